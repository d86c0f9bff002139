//! The map as SVG: one box per application (its name, family, servers and provider colour, a
//! symbol per family, a mark on the entry applications), the dependencies as arrows from an
//! application to what it depends on, each with its endpoint as a tooltip. Box groups carry
//! the application's id, as Maestro's map did, so the front end can find them.

use std::fmt::Write;

use super::layout::{EdgePath, Layout};

/// What a box shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub id: String,
    pub name: String,
    pub family: Option<String>,
    /// The hosting provider (`AWS`, `OpenStack`, ...), from the servers or the application.
    pub provider: Option<String>,
    pub servers: usize,
    pub root: bool,
}

/// The colour of a provider, as Maestro's map used them; on-premise grey otherwise.
pub fn provider_colour(provider: Option<&str>) -> &'static str {
    let p = provider.unwrap_or("").to_ascii_lowercase();
    match p.as_str() {
        "aws" => "#f58536",
        "openstack" => "#ce081f",
        "azure" => "#1566bf",
        "google cloudengine" | "gcp" | "google" => "#3b7ec6",
        "digital ocean" | "digitalocean" => "#0080ff",
        "linode" => "#08a830",
        "rackspace" => "#8e0416",
        "heroku" => "#473c8b",
        "ovh" => "#0b4571",
        "godaddy" => "#02c54a",
        _ => "#5b5b5b",
    }
}

/// XML text: the five characters that matter escaped, control characters dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Only what XML allows in a document (no control characters, no U+FFFE/U+FFFF).
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// The family's symbol, drawn in a 28×28 square at (x, y).
fn symbol(out: &mut String, family: Option<&str>, x: f64, y: f64) {
    let f = family.unwrap_or("").to_ascii_lowercase().replace('/', "");
    let (cx, cy) = (x + 14.0, y + 14.0);
    let _ = match f.as_str() {
        "database" => write!(
            out,
            r#"<path class="sym" d="M{x0} {y0} v16 a12 4 0 0 0 24 0 v-16"/><ellipse class="sym" cx="{cx}" cy="{y0}" rx="12" ry="4"/>"#,
            x0 = x + 2.0,
            y0 = y + 6.0
        ),
        "loadbalance" => write!(
            out,
            r#"<path class="sym" d="M{cx} {y} L{x1} {cy} L{cx} {y1} L{x} {cy} Z M{x3} {cy} H{x4}"/>"#,
            x1 = x + 28.0,
            y1 = y + 28.0,
            x3 = x + 7.0,
            x4 = x + 21.0
        ),
        "cdn" | "dns" => write!(
            out,
            r#"<circle class="sym" cx="{cx}" cy="{cy}" r="12"/><ellipse class="sym" cx="{cx}" cy="{cy}" rx="5" ry="12"/><path class="sym" d="M{x2} {cy} H{x3}"/>"#,
            x2 = x + 2.0,
            x3 = x + 26.0
        ),
        "cache" => write!(
            out,
            r#"<path class="sym fill" d="M{a} {y} L{b} {c} L{d} {c} L{e} {y1} L{f} {g} L{h} {g} Z"/>"#,
            a = x + 17.0,
            b = x + 8.0,
            c = y + 16.0,
            d = x + 13.0,
            e = x + 11.0,
            y1 = y + 28.0,
            f = x + 20.0,
            g = y + 12.0,
            h = x + 15.0
        ),
        "broker" | "smtp" => write!(
            out,
            r#"<rect class="sym" x="{x}" y="{y0}" width="28" height="18" rx="2"/><path class="sym" d="M{x} {y0} L{cx} {cy} L{x1} {y0}"/>"#,
            y0 = y + 5.0,
            x1 = x + 28.0
        ),
        "objectstorage" | "nas" => write!(
            out,
            r#"<path class="sym" d="M{x0} {y0} L{x1} {y0} L{x2} {y1} L{x3} {y1} Z"/>"#,
            x0 = x + 2.0,
            y0 = y + 4.0,
            x1 = x + 26.0,
            x2 = x + 22.0,
            y1 = y + 26.0,
            x3 = x + 6.0
        ),
        "containerorchestration" | "servicemesh" => write!(
            out,
            r#"<rect class="sym" x="{x}" y="{y}" width="12" height="12"/><rect class="sym" x="{x1}" y="{y}" width="12" height="12"/><rect class="sym" x="{x2}" y="{y1}" width="12" height="12"/>"#,
            x1 = x + 16.0,
            x2 = x + 8.0,
            y1 = y + 16.0
        ),
        "apigateway" | "serverless" => write!(
            out,
            r#"<path class="sym" d="M{a} {y} L{b} {y} L{x1} {cy} L{b} {y1} L{a} {y1} L{x} {cy} Z"/>"#,
            a = x + 7.0,
            b = x + 21.0,
            x1 = x + 28.0,
            y1 = y + 28.0
        ),
        _ => write!(
            out,
            r#"<rect class="sym" x="{x}" y="{y0}" width="28" height="22" rx="3"/><path class="sym" d="M{x} {y1} H{x1} M{a} {y2} H{b}"/>"#,
            y0 = y + 3.0,
            y1 = y + 9.0,
            x1 = x + 28.0,
            a = x + 5.0,
            b = x + 19.0,
            y2 = y + 16.0
        ),
    };
}

/// The `d` of an edge: straight inside a waypoint's cell, a curve across each gap (its control
/// points stay between the gap's sides, so the curve does too).
fn edge_d(e: &EdgePath) -> String {
    let mut d = String::new();
    let Some(&(x0, y0)) = e.points.first() else {
        return d;
    };
    let _ = write!(d, "M{x0:.1} {y0:.1}");
    for w in e.points.windows(2) {
        let ((ax, ay), (bx, by)) = (w[0], w[1]);
        if (ay - by).abs() < 0.01 || (ax - bx).abs() < 0.01 || e.from == e.to {
            let _ = write!(d, " L{bx:.1} {by:.1}");
        } else {
            let mx = (ax + bx) / 2.0;
            let _ = write!(d, " C{mx:.1} {ay:.1} {mx:.1} {by:.1} {bx:.1} {by:.1}");
        }
    }
    d
}

/// The whole SVG document.
pub fn draw(layout: &Layout, cards: &[Card], endpoints: &[Option<String>], title: &str) -> String {
    let (w, h) = (layout.width.ceil(), layout.height.ceil());
    let mut out = String::with_capacity(1024 + cards.len() * 900 + layout.edges.len() * 200);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif"><title>{title}</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 Z" fill="#4d4d4d"/></marker><style>.conector{{fill:none;stroke:#4d4d4d;stroke-width:1.4;stroke-opacity:.85}}.conector.back{{stroke:#b03a2e;stroke-dasharray:6 4}}.box{{fill:#fff;stroke:#c8c8c8;stroke-width:1}}.root .box{{stroke:#672064;stroke-width:2}}.sym{{fill:none;stroke:#672064;stroke-width:1.6}}.sym.fill{{fill:#672064;stroke:none}}.name{{font-size:14px;font-weight:bold;fill:#222}}.meta{{font-size:11px;fill:#666}}.entry{{fill:#672064}}</style></defs><rect width="100%" height="100%" fill="#fbfbfb"/>"##,
        title = escape(title)
    );
    out.push_str(r#"<g class="edges">"#);
    for (i, e) in layout.edges.iter().enumerate() {
        let class = if e.reversed {
            "conector back"
        } else {
            "conector"
        };
        let from = escape(cards.get(e.from).map(|c| c.id.as_str()).unwrap_or(""));
        let d = edge_d(e);
        let endpoint = endpoints.get(i).and_then(|p| p.as_deref()).unwrap_or("");
        let via = if endpoint.is_empty() {
            String::new()
        } else {
            format!(" via {endpoint}")
        };
        // As Maestro's map drew them, for analytics-front's viewer: the visible line, a wide
        // invisible one to hover (`conector_h conn-<from id>`), the endpoint as hidden text.
        let _ = write!(
            out,
            r##"<g class="edge"><path class="{class}" d="{d}" marker-end="url(#arrow)"/><path class="conector_h conn-{from}" d="{d}" fill="none" stroke="black" stroke-width="18" stroke-opacity="0"><title>{} depends on {}{}</title></path><text style="display:none">{}</text></g>"##,
            escape(cards.get(e.from).map(|c| c.name.as_str()).unwrap_or("")),
            escape(cards.get(e.to).map(|c| c.name.as_str()).unwrap_or("")),
            escape(&via),
            escape(endpoint),
        );
    }
    out.push_str("</g><g class=\"apps\">");
    for (i, c) in cards.iter().enumerate() {
        let Some(r) = layout.boxes.get(i) else {
            continue;
        };
        let colour = provider_colour(c.provider.as_deref());
        let _ = write!(
            out,
            r#"<g id="{id}" class="app boundaries{root}"><rect class="box" x="{x}" y="{y}" width="{bw}" height="{bh}" rx="6"/><rect x="{x}" y="{y}" width="6" height="{bh}" rx="3" fill="{colour}"/>"#,
            id = escape(&c.id),
            root = if c.root { " root" } else { "" },
            x = r.x,
            y = r.y,
            bw = r.w,
            bh = r.h,
        );
        if c.root {
            let _ = write!(
                out,
                r#"<path class="entry" d="M{a} {b} L{x} {m} L{a} {d} Z"/>"#,
                a = r.x - 12.0,
                b = r.y + r.h / 2.0 - 7.0,
                x = r.x - 2.0,
                m = r.y + r.h / 2.0,
                d = r.y + r.h / 2.0 + 7.0
            );
        }
        symbol(&mut out, c.family.as_deref(), r.x + 14.0, r.y + 18.0);
        let servers = match c.servers {
            0 => String::new(),
            1 => " · 1 server".to_owned(),
            n => format!(" · {n} servers"),
        };
        let _ = write!(
            out,
            r#"<text class="name" x="{tx}" y="{ty}">{name}</text><text class="meta" x="{tx}" y="{my}">{family}{servers}</text>"#,
            tx = r.x + 52.0,
            ty = r.y + 27.0,
            my = r.y + 46.0,
            name = escape(&cut(&c.name, 17)),
            family = escape(&cut(c.family.as_deref().unwrap_or("Application"), 16)),
        );
        let _ = write!(
            out,
            "<title>{}\nfamily: {}\nprovider: {}\nservers: {}</title></g>",
            escape(&c.name),
            escape(c.family.as_deref().unwrap_or("-")),
            escape(c.provider.as_deref().unwrap_or("on premise")),
            c.servers
        );
    }
    // Tooltips where analytics-front's viewer looks for them: `#tool-<id>`, a tspan per fact.
    out.push_str("</g><defs>");
    for c in cards {
        let _ = write!(out, r#"<g id="tool-{}"><text>"#, escape(&c.id));
        let servers = c.servers.to_string();
        for (key, value) in [
            ("name", Some(c.name.as_str())),
            ("family", c.family.as_deref()),
            ("provider", Some(c.provider.as_deref().unwrap_or("premise"))),
            ("servers", Some(servers.as_str())),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                let _ = write!(out, r#"<tspan class="{key}">{}</tspan>"#, escape(v));
            }
        }
        out.push_str("</text></g>");
    }
    out.push_str("</defs></svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::super::layout::layout;
    use super::*;

    #[test]
    fn names_are_escaped_and_ids_kept() {
        let l = layout(2, &[(0, 1)], &[0], &[0, 1]).expect("layout");
        let cards = vec![
            Card {
                id: "5f00000000000000000000a1".into(),
                name: "<script>alert(1)</script>".into(),
                family: Some("Database".into()),
                provider: Some("AWS".into()),
                servers: 2,
                root: true,
            },
            Card {
                id: "5f00000000000000000000a2".into(),
                name: "b & \"c\"".into(),
                family: None,
                provider: None,
                servers: 0,
                root: false,
            },
        ];
        let svg = draw(&l, &cards, &[Some("https://api/<x>".into())], "map");
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(svg.contains(r#"<g id="5f00000000000000000000a1" class="app boundaries root">"#));
        assert!(svg.contains(r#"<g id="tool-5f00000000000000000000a1">"#));
        assert!(svg.contains("conector_h conn-5f00000000000000000000a1"));
        assert_eq!(escape("a\u{FFFF}b\u{1}c"), "abc");
        assert!(svg.contains("2 servers") && svg.contains("#f58536"));
        assert!(svg.contains("via https://api/&lt;x&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
