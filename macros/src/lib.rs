//! `#[task]`: a typed function as a Celery task (see `maestro_worker::task` for the guide).
//!
//! - `lib`      the attribute: reads the options and the function, writes the task
//!
//! What it writes for `async fn add(x: i64, y: i64) -> TaskResult<i64>`:
//! - a unit struct `add`, the task value registered with a worker (`.task(add)`);
//! - `add::call(x, y)`: the function itself, to call directly (tests, other code);
//! - `add::new(x, y)`: a typed signature to send it from Rust (`TypedSignature<i64>`);
//! - `add::NAME`: the name Celery clients send it by;
//! - the `Task` impl: Python's argument binding by position and keyword, a `TypeError` naming
//!   the parameter for a wrong type, a missing or an unexpected argument, the result as JSON.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprArray, ExprLit, FnArg, GenericArgument, ItemFn, Lit, LitStr, Pat, Path,
    PathArguments, ReturnType, Type, meta::ParseNestedMeta,
};

/// Turns a function into a Celery task.
///
/// ```ignore
/// #[task(name = "myapp.add", max_retries = 5, rate_limit = "10/s", time_limit = 30)]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
/// ```
///
/// Generates the unit struct `add` (registered with `Worker::task(add)`), `add::call` (the
/// function itself), `add::new(x, y)` and `add::partial()` (typed signatures) and `add::NAME`.
///
/// Parameters: typed arguments bound by position or keyword as Python binds them (`Option<T>`
/// optional, `#[arg(default = expr)]` for a default); `ctx: &TaskContext`; `#[state] x: &T`
/// (the worker's state of type `T`); `#[args] req: T` (the whole call into a `CallArgs` type);
/// `call: &TaskArgs` (the raw call). The result: any `Serialize` type, or `Result<T, E>` /
/// `TaskResult<T>` with `E: Into<TaskError>`.
///
/// Options: `name`, `max_retries` (a count or `None`), `default_retry_delay`, `autoretry_for =
/// ["ExcType", ...]`, `retry_backoff`, `retry_backoff_max`, `retry_jitter`, `rate_limit =
/// "N/s|m|h"`, `time_limit`, `soft_time_limit`, `acks_late`, `ignore_result`, `track_started`,
/// `queue`, `expires` (durations in seconds), `on_success`, `on_failure`, `on_retry` (hook
/// functions), `shown_arguments` (what results and events show of the arguments), `blocking`
/// (a plain `fn` run on the blocking pool), `crate = "path"` (where `maestro_tasks` is, for
/// crates that do not depend on `maestro_worker`). The guide: `docs/writing-tasks.md`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut opts = Options::default();
    let parser = syn::meta::parser(|meta| opts.read(meta));
    if let Err(e) = parser.parse(attr) {
        return e.to_compile_error().into();
    }
    let function = match syn::parse::<ItemFn>(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error().into(),
    };
    match expand(opts, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The attribute's arguments.
#[derive(Default)]
struct Options {
    /// A string literal, or a path to a `&str` constant.
    name: Option<Expr>,
    root: Option<Path>,
    blocking: bool,
    /// `TaskOptions` setter calls.
    setters: Vec<TokenStream2>,
    queue: Option<LitStr>,
    expires: Option<TokenStream2>,
    rate_per_second: Option<f64>,
    shown_arguments: Option<Path>,
}

fn seconds(meta: &ParseNestedMeta) -> syn::Result<TokenStream2> {
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            let n: u64 = i.base10_parse()?;
            Ok(quote!(::std::time::Duration::from_secs(#n)))
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => {
            let n: f64 = f.base10_parse()?;
            if !(n.is_finite() && n >= 0.0) {
                return Err(syn::Error::new(f.span(), "seconds must be 0 or more"));
            }
            Ok(quote!(::std::time::Duration::from_secs_f64(#n)))
        }
        _ => Err(syn::Error::new(
            expr.span(),
            "expected a number of seconds, like 30 or 0.5",
        )),
    }
}

fn boolean(meta: &ParseNestedMeta) -> syn::Result<bool> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        return Ok(true);
    }
    let b: syn::LitBool = meta.value()?.parse()?;
    Ok(b.value)
}

fn path_value(meta: &ParseNestedMeta) -> syn::Result<Path> {
    meta.value()?.parse()
}

impl Options {
    fn read(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "name" => {
                let name: Expr = meta.value()?.parse()?;
                match &name {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) if s.value().is_empty() || s.value().len() > 255 => {
                        return Err(syn::Error::new(s.span(), "a task name is 1 to 255 bytes"));
                    }
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(_), ..
                    })
                    | Expr::Path(_) => {}
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "a task name is a string, or the path of a &str constant",
                        ));
                    }
                }
                self.name = Some(name);
            }
            "crate" => {
                let s: LitStr = meta.value()?.parse()?;
                self.root = Some(s.parse()?);
            }
            "blocking" => self.blocking = boolean(&meta)?,
            "max_retries" => {
                let expr: Expr = meta.value()?.parse()?;
                let setter = match &expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => {
                        let n: u32 = i.base10_parse()?;
                        quote!(max_retries(::core::option::Option::Some(#n)))
                    }
                    Expr::Path(p) if p.path.is_ident("None") => {
                        quote!(max_retries(::core::option::Option::None))
                    }
                    Expr::Path(p) => quote!(max_retries(::core::option::Option::Some(#p))),
                    _ => {
                        return Err(syn::Error::new(
                            expr.span(),
                            "max_retries is a count (or a constant's path), or None to retry for ever",
                        ));
                    }
                };
                self.setters.push(setter);
            }
            "default_retry_delay"
            | "retry_backoff"
            | "retry_backoff_max"
            | "time_limit"
            | "soft_time_limit" => {
                let d = seconds(&meta)?;
                let setter = format_ident!("{}", key);
                self.setters.push(quote!(#setter(#d)));
            }
            "expires" => {
                let d = seconds(&meta)?;
                self.setters.push(quote!(expires(#d)));
                self.expires = Some(d);
            }
            "retry_jitter" | "acks_late" | "ignore_result" | "track_started" => {
                let b = boolean(&meta)?;
                let setter = format_ident!("{}", key);
                self.setters.push(quote!(#setter(#b)));
            }
            "autoretry_for" => {
                let list: ExprArray = meta.value()?.parse()?;
                let mut names = Vec::new();
                for e in &list.elems {
                    match e {
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(s), ..
                        }) => names.push(s.clone()),
                        other => {
                            return Err(syn::Error::new(
                                other.span(),
                                "autoretry_for lists exception type names: [\"ConnectionError\"]",
                            ));
                        }
                    }
                }
                self.setters.push(quote!(autoretry_for([#(#names),*])));
            }
            "rate_limit" => {
                let text: LitStr = meta.value()?.parse()?;
                let per_second = parse_rate(&text.value()).ok_or_else(|| {
                    syn::Error::new(
                        text.span(),
                        "rate_limit is runs per s, m or h, like \"10/s\" or \"100/m\"",
                    )
                })?;
                self.rate_per_second = Some(per_second);
            }
            "queue" => {
                let q: LitStr = meta.value()?.parse()?;
                if q.value().is_empty() {
                    return Err(syn::Error::new(q.span(), "a queue name is not empty"));
                }
                self.setters.push(quote!(queue(#q)));
                self.queue = Some(q);
            }
            "shown_arguments" => self.shown_arguments = Some(path_value(&meta)?),
            "on_success" | "on_failure" | "on_retry" => {
                let f = path_value(&meta)?;
                let setter = format_ident!("{}", key);
                self.setters.push(quote!(#setter(#f)));
            }
            _ => {
                return Err(meta.error(
                    "unknown task option; expected one of name, max_retries, \
                     default_retry_delay, autoretry_for, retry_backoff, retry_backoff_max, \
                     retry_jitter, rate_limit, time_limit, soft_time_limit, acks_late, \
                     ignore_result, track_started, queue, expires, on_success, on_failure, \
                     on_retry, shown_arguments, blocking, crate",
                ));
            }
        }
        Ok(())
    }
}

/// Runs per second of Celery's rate syntax (`10/s`, `100/m`, `1000/h`, `5`).
fn parse_rate(text: &str) -> Option<f64> {
    let (count, per) = match text.trim().split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (text.trim(), "s"),
    };
    let count: f64 = count.parse().ok()?;
    let secs = match per {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let rate = count / secs;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

/// What a parameter of the task function is (a handful per function: size does not matter).
#[allow(clippy::large_enum_variant)]
enum Role {
    /// `&TaskContext`: the run's context.
    Context,
    /// `&TaskArgs`: the call as it came, for a task that reads it itself (variable arguments).
    RawArgs,
    /// `#[state] x: &T`: the worker's state of type `T`.
    State(Type),
    /// `#[args] req: T`: the whole call, bound to `T`'s parameters (`T: CallArgs`).
    Call(Type),
    /// An argument of the call, read from JSON.
    Argument {
        name: String,
        ty: Type,
        default: Option<Expr>,
        optional: bool,
    },
}

struct Param {
    ident: syn::Ident,
    role: Role,
}

/// The last path segment of `ty`, when it is a path type.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn first_generic(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

fn read_params(function: &mut ItemFn) -> syn::Result<Vec<Param>> {
    let mut out = Vec::new();
    for arg in &mut function.sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new(
                arg.span(),
                "a task is a free function, not a method",
            ));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(
                pt.pat.span(),
                "task parameters are plain names (Python calls them by name)",
            ));
        };
        let ident = pi.ident.clone();
        let mut state = false;
        let mut call = false;
        let mut default = None;
        let mut kept = Vec::new();
        for a in pt.attrs.drain(..) {
            if a.path().is_ident("state") {
                state = true;
            } else if a.path().is_ident("args") {
                call = true;
            } else if a.path().is_ident("arg") {
                a.parse_nested_meta(|m| {
                    if m.path.is_ident("default") {
                        default = Some(m.value()?.parse::<Expr>()?);
                        Ok(())
                    } else {
                        Err(m.error("expected #[arg(default = <value>)]"))
                    }
                })?;
            } else {
                kept.push(a);
            }
        }
        pt.attrs = kept;
        let ty = (*pt.ty).clone();
        let role = match &ty {
            _ if call && state => {
                return Err(syn::Error::new(
                    ty.span(),
                    "a parameter is either #[args] or #[state]",
                ));
            }
            Type::Reference(_) if call => {
                return Err(syn::Error::new(
                    ty.span(),
                    "#[args] takes the call by value: #[args] req: Request",
                ));
            }
            _ if call => Role::Call(ty.clone()),
            Type::Reference(r) if state => Role::State((*r.elem).clone()),
            _ if state => {
                return Err(syn::Error::new(
                    ty.span(),
                    "#[state] parameters are references: #[state] db: &Database",
                ));
            }
            Type::Reference(r)
                if last_segment(&r.elem).is_some_and(|s| s.ident == "TaskContext") =>
            {
                Role::Context
            }
            Type::Reference(r) if last_segment(&r.elem).is_some_and(|s| s.ident == "TaskArgs") => {
                Role::RawArgs
            }
            Type::Reference(_) => {
                return Err(syn::Error::new(
                    ty.span(),
                    "task arguments are owned values read from JSON (String, not &str); \
                     references are only &TaskContext and #[state] parameters",
                ));
            }
            _ => {
                let optional = last_segment(&ty).is_some_and(|s| s.ident == "Option");
                let name = ident.to_string().trim_start_matches("r#").to_owned();
                Role::Argument {
                    name,
                    ty: ty.clone(),
                    default,
                    optional,
                }
            }
        };
        out.push(Param { ident, role });
    }
    Ok(out)
}

/// The result type of the task (what the typed signature returns) and whether the function
/// returns a `Result` (`Result<T, E>` or `TaskResult<T>`).
fn output(function: &ItemFn, private: &TokenStream2) -> (Type, bool) {
    match &function.sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match last_segment(ty) {
            Some(seg) if seg.ident == "Result" || seg.ident == "TaskResult" => {
                let ok = first_generic(seg)
                    .cloned()
                    .unwrap_or_else(|| syn::parse_quote!(#private::serde_json::Value));
                (ok, true)
            }
            _ => ((**ty).clone(), false),
        },
    }
}

fn expand(opts: Options, mut function: ItemFn) -> syn::Result<TokenStream2> {
    if !function.sig.generics.params.is_empty() || function.sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            function.sig.generics.span(),
            "a task function has no generic parameters",
        ));
    }
    if function.sig.asyncness.is_some() == opts.blocking {
        let why = if opts.blocking {
            "a blocking task is a plain fn (it runs on the blocking pool); drop `async`"
        } else {
            "a task is an `async fn`; a plain fn that blocks or burns CPU is #[task(blocking)]"
        };
        return Err(syn::Error::new(function.sig.fn_token.span(), why));
    }
    let params = read_params(&mut function)?;
    let calls = params
        .iter()
        .filter(|p| matches!(p.role, Role::Call(_) | Role::RawArgs))
        .count();
    let arguments = params
        .iter()
        .filter(|p| matches!(p.role, Role::Argument { .. }))
        .count();
    if calls > 1 || (calls == 1 && arguments > 0) {
        return Err(syn::Error::new(
            function.sig.inputs.span(),
            "an #[args] or &TaskArgs parameter takes the whole call: it is the task's only \
             argument (besides &TaskContext and #[state] ones)",
        ));
    }
    let root = opts
        .root
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::maestro_worker::tasks));
    let private = quote!(#root::__private);
    let (out_ty, fallible) = output(&function, &private);
    let vis = function.vis.clone();
    let ident = function.sig.ident.clone();
    let fn_name = ident.to_string().trim_start_matches("r#").to_owned();
    let task_name: Expr = opts
        .name
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(#fn_name));
    let docs: Vec<_> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();

    // The function itself becomes `<name>::call`.
    let mut call = function.clone();
    call.sig.ident = format_ident!("call");
    call.attrs.retain(|a| !a.path().is_ident("doc"));
    let call_doc = format!("The task's function itself: `{fn_name}` called directly.");

    let mut param_specs = Vec::new();
    let mut takes = Vec::new();
    let mut states = Vec::new();
    let mut needs = Vec::new();
    let mut call_args = Vec::new();
    let mut new_params = Vec::new();
    let mut new_values = Vec::new();
    let mut whole_call = None;
    let mut raw_args = false;
    for p in &params {
        let id = &p.ident;
        match &p.role {
            Role::Context => call_args.push(quote!(__ctx)),
            Role::RawArgs => {
                call_args.push(quote!(__args));
                raw_args = true;
            }
            Role::Call(ty) => {
                takes.push(quote!(
                    let #id: #ty = args.parse::<#ty>(<#ty as #private::CallArgs>::PARAMETERS)?;
                ));
                call_args.push(quote!(#id));
                new_params.push(quote!(#id: #ty));
                whole_call = Some(id.clone());
            }
            Role::State(ty) => {
                states.push(quote!(let #id: &#ty = __ctx.state::<#ty>()?;));
                needs.push(quote!(#private::StateNeed::of::<#ty>()));
                call_args.push(quote!(#id));
            }
            Role::Argument {
                name,
                ty,
                default,
                optional,
            } => {
                let required = default.is_none() && !optional;
                param_specs.push(quote!(#private::Param { name: #name, required: #required }));
                let fallback = match (default, optional) {
                    (Some(d), _) => quote!(::core::option::Option::Some(#d)),
                    (None, true) => {
                        quote!(::core::option::Option::Some(::core::option::Option::None))
                    }
                    (None, false) => quote!(::core::option::Option::None),
                };
                takes.push(quote!(let #id: #ty = __bound.take(#name, || #fallback)?;));
                call_args.push(quote!(#id));
                new_params.push(quote!(#id: impl ::core::convert::Into<#ty>));
                new_values
                    .push(quote!(#private::to_argument(&::core::convert::Into::<#ty>::into(#id))));
            }
        }
    }
    let result = if fallible {
        quote!(#private::fallible_result(__out))
    } else {
        quote!(#private::to_result(&__out))
    };
    let (own_args, lend_args, bind_args) = if raw_args {
        (
            quote!(let __owned_args = ::core::clone::Clone::clone(args);),
            quote!(let __args = &__owned_args;),
            quote!(let __args = args;),
        )
    } else {
        (quote!(), quote!(), quote!())
    };
    let body = if opts.blocking {
        quote! {
            let __owned = ::core::clone::Clone::clone(ctx);
            #own_args
            #(#takes)*
            #private::blocking(move || {
                let __ctx = &__owned;
                #lend_args
                #(#states)*
                let __out = #ident::call(#(#call_args),*);
                #result
            })
            .await
        }
    } else {
        quote! {
            let __ctx = ctx;
            #bind_args
            #(#takes)*
            #(#states)*
            let __out = #ident::call(#(#call_args),*).await;
            #result
        }
    };
    let bind = if whole_call.is_some() || raw_args {
        quote!()
    } else if param_specs.is_empty() {
        quote!(#[allow(unused_mut, unused_variables)] let mut __bound = args.bind_call(#fn_name, &[])?;)
    } else {
        quote!(let mut __bound = args.bind_call(#fn_name, &[#(#param_specs),*])?;)
    };
    // The whole call (`#[args]`, `&TaskArgs`) has no parameter list of its own.
    let parameters = if whole_call.is_some() || raw_args {
        quote!()
    } else {
        quote!(
            fn parameters(&self) -> ::core::option::Option<&'static [#private::Param]> {
                ::core::option::Option::Some(&[#(#param_specs),*])
            }
        )
    };
    let mut setters = opts.setters.clone();
    if let Some(rate) = opts.rate_per_second {
        setters.push(quote!(rate_limit(#private::RateLimit {
            interval: ::std::time::Duration::from_secs_f64(1.0 / #rate),
        })));
    }
    let queue_option = opts
        .queue
        .as_ref()
        .map(|q| quote!(.with_option("queue", #private::serde_json::Value::from(#q))));
    let expires_option = opts.expires.as_ref().map(
        |d| quote!(.with_option("expires", #private::serde_json::Value::from((#d).as_secs_f64()))),
    );
    if raw_args {
        new_params.push(quote!(args: ::std::vec::Vec<#private::serde_json::Value>));
        new_params.push(quote!(kwargs: #private::serde_json::Map<::std::string::String, #private::serde_json::Value>));
    }
    let new_body = match &whole_call {
        _ if raw_args => quote! {
            #private::TypedSignature::with_call(#task_name, args, kwargs) #queue_option #expires_option
        },
        Some(id) => quote! {
            #private::TypedSignature::with_kwargs(#task_name, #private::to_argument(&#id))
                #queue_option #expires_option
        },
        None => quote! {
            let args: ::core::result::Result<::std::vec::Vec<#private::serde_json::Value>, ::std::string::String> =
                [#(#new_values),*].into_iter().collect();
            #private::TypedSignature::new(#task_name, args) #queue_option #expires_option
        },
    };
    let shown = opts.shown_arguments.as_ref().map(|f| {
        quote! {
            fn shown_arguments(
                &self,
                args: &#private::serde_json::Value,
                kwargs: &#private::serde_json::Value,
            ) -> ::core::option::Option<(#private::serde_json::Value, #private::serde_json::Value)> {
                ::core::option::Option::Some(#f(args, kwargs))
            }
        }
    });
    let struct_doc = match &task_name {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => format!(" The Celery task `{}`.", s.value()),
        other => format!(" The Celery task named by `{}`.", quote!(#other)),
    };
    Ok(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #struct_doc]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        impl #ident {
            /// The name Celery clients send this task by.
            #vis const NAME: &'static str = #task_name;

            #[doc = #call_doc]
            #[allow(clippy::too_many_arguments)]
            #call

            /// A typed signature of a call, to send from Rust (`Client::call`).
            #[allow(clippy::too_many_arguments)]
            #vis fn new(#(#new_params),*) -> #private::TypedSignature<#out_ty> {
                #new_body
            }
        }

        impl #ident {
            /// A signature without arguments, for a callback, a chord's body or a link: the
            /// parent's result becomes its first argument (Celery's `task.s()`).
            #vis fn partial() -> #private::TypedSignature<#out_ty> {
                #private::TypedSignature::new(#task_name, ::core::result::Result::Ok(::std::vec::Vec::new())) #queue_option #expires_option
            }
        }

        impl #private::Task for #ident {
            fn name(&self) -> &str {
                #task_name
            }

            fn options(&self) -> &#private::TaskOptions {
                static OPTIONS: ::std::sync::LazyLock<#private::TaskOptions> =
                    ::std::sync::LazyLock::new(|| #private::TaskOptions::new() #(.#setters)*);
                &OPTIONS
            }

            fn state_needs(&self) -> ::std::vec::Vec<#private::StateNeed> {
                ::std::vec![#(#needs),*]
            }

            #parameters

            #shown

            fn run<'a>(
                &'a self,
                ctx: &'a #private::TaskContext,
                args: &'a #private::TaskArgs,
            ) -> #private::TaskFuture<'a> {
                ::std::boxed::Box::pin(async move {
                    #bind
                    #body
                })
            }
        }
    })
}
