//! The checks every request shares: identifiers that become collection names, channel names
//! or URL path segments, and free text.

use maestro_tasks::FieldError;
use serde::{Deserialize, Deserializer};

/// Longest identifier (connection, report, owner, entity ids, collection names), bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest free text (titles, messages), bytes.
pub const TEXT_BYTES_MAX: usize = 4096;

/// An identifier: 1..=`ID_BYTES_MAX` bytes of ASCII letters, digits, `_`, `-`, `.`, and not
/// `.` or `..` (it may become a URL path segment).
pub fn check_id(field: &str, v: &str) -> Result<(), FieldError> {
    if v.is_empty() || v.len() > ID_BYTES_MAX {
        return Err(FieldError::value(
            field,
            format!("must be 1 to {ID_BYTES_MAX} bytes"),
        ));
    }
    let ok_chars = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok_chars || v == "." || v == ".." {
        return Err(FieldError::value(
            field,
            "may hold only ASCII letters, digits, '_', '-' and '.'",
        ));
    }
    Ok(())
}

/// A collection a request names: an identifier, and not one of MongoDB's `system.*`.
pub fn check_collection(field: &str, v: &str) -> Result<(), FieldError> {
    check_id(field, v)?;
    if v.starts_with("system.") {
        return Err(FieldError::value(field, "cannot name a system collection"));
    }
    Ok(())
}

/// Free text: not blank, at most `TEXT_BYTES_MAX` bytes.
pub fn check_text(field: &str, v: &str) -> Result<(), FieldError> {
    if v.trim().is_empty() || v.len() > TEXT_BYTES_MAX {
        return Err(FieldError::value(
            field,
            format!("must be non-blank and at most {TEXT_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Deserializes `null` as the type's default (Python callers send `None` for "not given").
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_id("id", "5f1c0a_r-1.x").is_ok());
        for bad in [
            "",
            "a b",
            "..",
            ".",
            "a/b",
            "ü",
            &"x".repeat(ID_BYTES_MAX + 1),
        ] {
            let e = check_id("id", bad).expect_err(bad);
            assert_eq!(e.field, "id");
        }
        assert!(check_collection("c", "system.users").is_err());
        assert!(check_text("t", "  ").is_err());
    }
}
