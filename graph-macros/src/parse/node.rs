//! `#[node]` functions: their arguments and signature, each parameter classified by role.

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Attribute, FnArg, Ident, ItemFn, Meta, Type};

use super::args::{NodeArgs, node_args};
use super::tokens_to_string;
use crate::ctxt::Ctxt;

/// What one parameter of a node function receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamRole {
    /// The workflow state, `&mut T` (`mutable`) or `&T`.
    State { mutable: bool },
    /// The run context, `&NodeCtx`.
    Ctx,
    /// The input of an interrupt node.
    Input,
    /// The child session of a subgraph node (`#[node(subgraph = m)]`), `Child<m::Workflow>`.
    Child,
    /// Another parameter of a node that is not an interrupt node: a map node's item, or a
    /// join's branch output, named after the branch. `check` decides which it is from the
    /// graph (and reports it on any other node).
    Extra,
}

/// One parameter of a node function, classified.
pub(crate) struct NodeParam {
    pub(crate) role: ParamRole,
    /// The declared type (its tokens keep the user's spans, for spanned probes).
    pub(crate) ty: Type,
    /// The parameter's name, when its pattern is a plain identifier (`fraud: FraudScore`).
    pub(crate) name: Option<Ident>,
    /// The whole parameter, `name: Type`, for messages.
    pub(crate) tokens: proc_macro2::TokenStream,
}

/// A function marked `#[node]`.
pub(crate) struct NodeFn {
    /// The function's name token (raw identifiers stay raw).
    pub(crate) ident: Ident,
    /// The node's name: the function's name without `r#`.
    pub(crate) name: String,
    pub(crate) args: NodeArgs,
    /// The parameters in declared order; empty when the signature was rejected.
    pub(crate) params: Vec<NodeParam>,
    /// The declared return type.
    pub(crate) output: syn::ReturnType,
    /// Where the function sits in [`Module::items`].
    pub(crate) item_index: usize,
    /// Where the function sits among all the items of the module, `edge!`s included: graph
    /// errors are reported in this order.
    pub(crate) position: usize,
}

impl NodeFn {
    /// The input type of an interrupt node: what `Input` holds for it. For a node with
    /// `wait_ms`, whose parameter is `Option<I>`, that is `I`.
    pub(crate) fn input(&self) -> Option<&Type> {
        let param = self.params.iter().find(|p| p.role == ParamRole::Input)?;
        match self.args.wait_ms {
            Some(_) => Some(option_inner(&param.ty).unwrap_or(&param.ty)),
            None => Some(&param.ty),
        }
    }

    /// The parameters after the state and `ctx` of a node that is not an interrupt node.
    pub(crate) fn extras(&self) -> impl Iterator<Item = &NodeParam> {
        self.params.iter().filter(|p| p.role == ParamRole::Extra)
    }

    /// The state parameter, when the signature was read.
    pub(crate) fn state_param(&self) -> Option<&NodeParam> {
        self.params
            .iter()
            .find(|p| matches!(p.role, ParamRole::State { .. }))
    }

    /// The declared return type, `None` for `()` written or implied.
    pub(crate) fn return_type(&self) -> Option<&Type> {
        match &self.output {
            syn::ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty),
            _ => None,
        }
    }

    /// What a branch node or the node before `each` produces: its return type, or `O` when it
    /// returns `Result<O, E>` (see [`result_ok_type`]).
    pub(crate) fn produced_type(&self) -> Option<&Type> {
        let ty = self.return_type()?;
        Some(result_ok_type(ty).unwrap_or(ty))
    }
}

/// The type's last path segment and its generic type arguments, through parentheses and
/// invisible groups.
fn last_segment(ty: &Type) -> Option<(&Ident, Vec<&Type>)> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            let segment = path.path.segments.last()?;
            let args = match &segment.arguments {
                syn::PathArguments::AngleBracketed(args) => args
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        syn::GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some((&segment.ident, args))
        }
        Type::Paren(inner) => last_segment(&inner.elem),
        Type::Group(inner) => last_segment(&inner.elem),
        _ => None,
    }
}

/// `O` when `ty` reads `Result<O, E>` or `Result<O>` (an alias such as `anyhow::Result<O>`):
/// the macro only sees tokens, so a return type is taken as fallible when its last path
/// segment is `Result`. A branch node or the node before `each` that returns a `Result`
/// fails with its `Err`; any other type is its output.
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    match last_segment(ty)? {
        (ident, args) if ident == "Result" => args.first().copied(),
        _ => None,
    }
}

/// `O` when `ty` reads `Result<O, Failure>` (any path to `Failure`): a join parameter of this
/// form *collects* its branch's failure instead of failing the run. Read from the tokens: the
/// last path segment of the error type is `Failure`.
pub(crate) fn collected_type(ty: &Type) -> Option<&Type> {
    match last_segment(ty)? {
        (ident, args) if ident == "Result" && args.len() == 2 => {
            let failure = last_segment(args[1]).is_some_and(|(ident, _)| ident == "Failure");
            failure.then_some(args[0])
        }
        _ => None,
    }
}

/// `I` when `ty` reads `Option<I>` (any path to `Option`): the input of an interrupt node
/// with `wait_ms`.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    match last_segment(ty)? {
        (ident, args) if ident == "Option" && args.len() == 1 => args.first().copied(),
        _ => None,
    }
}

/// `T` when `ty` reads `Vec<T>` (any path to `Vec`): a map's join takes its outputs so.
pub(crate) fn vec_item_type(ty: &Type) -> Option<&Type> {
    match last_segment(ty)? {
        (ident, args) if ident == "Vec" && args.len() == 1 => args.first().copied(),
        _ => None,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

fn is_node_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "node")
}

pub(super) fn is_cfg_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr")
}

/// Removes the `#[node]` attribute (the first one; a second is an error) and returns it.
pub(super) fn take_node_attr(cx: &Ctxt, attrs: &mut Vec<Attribute>) -> Option<Attribute> {
    let mut found: Option<Attribute> = None;
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if is_node_attr(&attr) {
            if found.is_some() {
                cx.error_spanned_by(
                    &attr,
                    "duplicate `#[node]`; merge the keys into one `#[node(…)]`",
                );
            } else {
                found = Some(attr);
            }
        } else {
            kept.push(attr);
        }
    }
    *attrs = kept;
    found
}

/// Reads a `#[node]` function's arguments and signature.
pub(super) fn node_fn(
    cx: &Ctxt,
    attr: Attribute,
    func: &ItemFn,
    state_hint: &str,
    item_index: usize,
) -> NodeFn {
    let ident = func.sig.ident.clone();
    let name = ident.unraw().to_string();
    let args = match &attr.meta {
        Meta::Path(_) => NodeArgs::default(),
        Meta::List(list) => node_args(cx, list.tokens.clone()),
        Meta::NameValue(meta) => {
            cx.error_spanned_by(
                meta,
                "`#[node]` takes its keys in parentheses: `#[node(interrupt, retry = 3, timeout_ms = 5_000)]`",
            );
            NodeArgs::default()
        }
    };
    for attr in &func.attrs {
        if is_cfg_attr(attr) {
            cx.error_spanned_by(
                attr,
                format!(
                    "`#[cfg]` on node `{name}` is not supported: the graph is checked before `cfg` is applied; put the `cfg` on the whole workflow module, or inside the node's body"
                ),
            );
        }
    }
    if let Some((_, key)) = &args.wait_ms
        && !args.interrupt
    {
        cx.error_spanned_by(
            key,
            format!(
                "`wait_ms` is how long an interrupt node waits for its input, and `{name}` is not an interrupt node: write `#[node(interrupt, wait_ms = N)]`, or remove `wait_ms`"
            ),
        );
    }
    if let Some((_, key)) = &args.subgraph
        && args.interrupt
    {
        // A subgraph node waits for its child, and the child's own interrupt nodes are where
        // humans answer; an input for the node itself would have nowhere to go.
        cx.error_spanned_by(
            key,
            format!(
                "node `{name}` cannot be both `interrupt` and `subgraph`: it runs a child workflow, whose own interrupt nodes wait for input; remove `interrupt`, or wait in a node before or after `{name}`"
            ),
        );
    }
    let params = node_signature(cx, func, &name, &args, state_hint);
    NodeFn {
        ident,
        name,
        args,
        params,
        output: func.sig.output.clone(),
        item_index,
        position: 0,
    }
}

/// Checks a node's signature and classifies its parameters. Returns no parameters when the
/// signature cannot be called (the error is recorded).
fn node_signature(
    cx: &Ctxt,
    func: &ItemFn,
    name: &str,
    args: &NodeArgs,
    state_hint: &str,
) -> Vec<NodeParam> {
    let sig = &func.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("node `{name}` must be an `async fn`: write `async fn {name}(…)`"),
        );
        ok = false;
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            format!("node `{name}` cannot be a `const fn`; remove `const`"),
        );
        ok = false;
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            format!("node `{name}` cannot be an `unsafe fn`: the workflow calls it from safe code; use an `unsafe` block inside it"),
        );
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format!("node `{name}` cannot have an `extern` ABI; remove it"),
        );
        ok = false;
    }
    let generic = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
    if let Some(param) = generic {
        cx.error_spanned_by(
            param,
            format!("node `{name}` cannot be generic: the workflow calls it with concrete types; remove the type parameter"),
        );
        ok = false;
    }
    if let Some(where_clause) = &sig.generics.where_clause
        && generic.is_none()
        && !where_clause.predicates.is_empty()
    {
        cx.error_spanned_by(
            where_clause,
            format!("node `{name}` cannot have a `where` clause; remove it"),
        );
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("node `{name}` cannot be variadic"));
        ok = false;
    }

    let mut params = Vec::new();
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        None => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "node `{name}` takes no parameters; its first parameter must be the state: `async fn {name}(state: &mut {state_hint})`"
                ),
            );
            ok = false;
        }
        Some(FnArg::Receiver(receiver)) => {
            cx.error_spanned_by(
                receiver,
                format!("node `{name}` cannot take `self`: nodes are free functions whose first parameter is the state, `&mut {state_hint}`"),
            );
            ok = false;
        }
        Some(FnArg::Typed(first)) => match &*first.ty {
            Type::Reference(reference) if is_node_ctx(&reference.elem) => {
                cx.error_spanned_by(
                    &first.ty,
                    format!("the first parameter of node `{name}` must be the state, `&mut {state_hint}`; `ctx: &NodeCtx` goes after it"),
                );
                // The other parameters cannot be classified without the state in front.
                return params;
            }
            Type::Reference(reference) => params.push(NodeParam {
                role: ParamRole::State {
                    mutable: reference.mutability.is_some(),
                },
                ty: (*first.ty).clone(),
                name: pat_name(&first.pat),
                tokens: first.to_token_stream(),
            }),
            other => {
                cx.error_spanned_by(
                    other,
                    format!(
                        "the first parameter of node `{name}` must be the state by reference: `&mut {state_hint}` (or `&{state_hint}` to only read it)"
                    ),
                );
                ok = false;
            }
        },
    }

    let mut ctx_seen = false;
    for input in inputs {
        let FnArg::Typed(pat_type) = input else {
            cx.error_spanned_by(input, format!("node `{name}` cannot take `self`"));
            ok = false;
            continue;
        };
        let ty = &*pat_type.ty;
        if ctx_type(ty).is_some() || is_node_ctx(ty) {
            if ctx_seen {
                cx.error_spanned_by(
                    pat_type,
                    format!("node `{name}` takes `NodeCtx` twice; remove one"),
                );
                ok = false;
            }
            ctx_seen = true;
            match ty {
                Type::Reference(reference) if reference.mutability.is_some() => {
                    cx.error_spanned_by(
                        ty,
                        "the run context is shared: take `ctx: &NodeCtx`, not `&mut NodeCtx`",
                    );
                    ok = false;
                }
                Type::Reference(_) => params.push(NodeParam {
                    role: ParamRole::Ctx,
                    ty: ty.clone(),
                    name: pat_name(&pat_type.pat),
                    tokens: pat_type.to_token_stream(),
                }),
                _ => {
                    cx.error_spanned_by(ty, "take the run context by reference: `ctx: &NodeCtx`");
                    ok = false;
                }
            }
            continue;
        }
        if is_child(ty) {
            match &args.subgraph {
                Some(_) if params.iter().any(|p| p.role == ParamRole::Child) => {
                    cx.error_spanned_by(
                        pat_type,
                        format!("node `{name}` takes `Child` twice; remove one"),
                    );
                    ok = false;
                }
                Some(_) => params.push(NodeParam {
                    role: ParamRole::Child,
                    ty: ty.clone(),
                    name: pat_name(&pat_type.pat),
                    tokens: pat_type.to_token_stream(),
                }),
                None => {
                    cx.error_spanned_by(
                        ty,
                        format!(
                            "node `{name}` takes a child session but does not say which workflow it runs: write `#[node(subgraph = m)]` with `m` the child's `#[workflow]` module, and take `Child<m::Workflow>`"
                        ),
                    );
                    ok = false;
                }
            }
            continue;
        }
        let has_input = params.iter().any(|p| p.role == ParamRole::Input);
        if !args.interrupt {
            // A map node's item or a join's branch output; anything else is reported by
            // `check`, which knows the node's place in the graph.
            params.push(NodeParam {
                role: ParamRole::Extra,
                ty: ty.clone(),
                name: pat_name(&pat_type.pat),
                tokens: pat_type.to_token_stream(),
            });
        } else if has_input {
            cx.error_spanned_by(
                pat_type,
                format!(
                    "interrupt node `{name}` takes exactly one input parameter; remove `{}`, or fold it into the input type",
                    tokens_to_string(pat_type)
                ),
            );
            ok = false;
        } else if let Some(problem) =
            input_type_problem(ty).or_else(|| option_inner(ty).and_then(input_type_problem))
        {
            cx.error_spanned_by(
                ty,
                format!("the input of interrupt node `{name}` {problem}"),
            );
            ok = false;
        } else if let Some(problem) = deadline_problem(name, ty, args) {
            cx.error_spanned_by(ty, problem);
            ok = false;
        } else {
            params.push(NodeParam {
                role: ParamRole::Input,
                ty: ty.clone(),
                name: pat_name(&pat_type.pat),
                tokens: pat_type.to_token_stream(),
            });
        }
    }
    if args.interrupt && ok && !params.iter().any(|p| p.role == ParamRole::Input) {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "interrupt node `{name}` has no input parameter: add the decision it waits for, e.g. `async fn {name}(state: &mut {state_hint}, decision: Decision)`"
            ),
        );
    }
    if let Some((path, _)) = &args.subgraph
        && ok
        && !args.interrupt
        && !params.iter().any(|p| p.role == ParamRole::Child)
    {
        let module = tokens_to_string(path);
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "subgraph node `{name}` has no child parameter: add `child: Child<{module}::Workflow>` after the state, and run the child with `child.run(initial).await`"
            ),
        );
    }
    // The parameters are only used by a successful expansion, which the recorded errors prevent.
    params
}

/// Whether the type's last path segment is `Child` (any path to `graph_runtime::Child`): a
/// subgraph node's child session. The generic argument is checked by rustc, at the user's type.
fn is_child(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|(ident, _)| ident == "Child")
}

/// The name a parameter binds, when its pattern is a plain identifier (`mut` allowed).
fn pat_name(pat: &syn::Pat) -> Option<Ident> {
    match pat {
        syn::Pat::Ident(ident) if ident.subpat.is_none() && ident.by_ref.is_none() => {
            Some(ident.ident.clone())
        }
        _ => None,
    }
}

/// Why `ty` cannot be an interrupt input: it is stored in `Input` and in checkpoints.
fn input_type_problem(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Reference(_) => Some(
            "must be an owned type (it is saved in the checkpoint), not a reference: e.g. `String` instead of `&str`",
        ),
        Type::ImplTrait(_) => {
            Some("must be a concrete type (it is saved in the checkpoint), not `impl Trait`")
        }
        Type::Infer(_) => Some("must be written out"),
        Type::Paren(inner) => input_type_problem(&inner.elem),
        Type::Group(inner) => input_type_problem(&inner.elem),
        _ => None,
    }
}

/// Why `ty` cannot be the input of interrupt node `name` given its `wait_ms`: a node with
/// `wait_ms` runs with `None` once the wait is over, so it takes `Option<I>`; one without
/// never does, so an `Option` there would be a deadline that never comes.
fn deadline_problem(name: &str, ty: &Type, args: &NodeArgs) -> Option<String> {
    let written = tokens_to_string(ty);
    match (args.wait_ms.as_ref(), option_inner(ty)) {
        (Some((ms, _)), None) => Some(format!(
            "interrupt node `{name}` has `wait_ms = {ms}`, so it also runs without its input once the wait is over: take `Option<{written}>` (`None` when no input came in time)"
        )),
        (None, Some(inner)) => Some(format!(
            "interrupt node `{name}` takes `{written}` but has no deadline: add `wait_ms = N` to `#[node(interrupt)]` to run it with `None` once N ms pass without an input, or take `{}`",
            tokens_to_string(inner)
        )),
        _ => None,
    }
}

/// `&NodeCtx` / `&path::NodeCtx`: the referenced type.
fn ctx_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if is_node_ctx(&reference.elem) => Some(&reference.elem),
        Type::Paren(inner) => ctx_type(&inner.elem),
        Type::Group(inner) => ctx_type(&inner.elem),
        _ => None,
    }
}

/// Whether the type's last path segment is `NodeCtx`.
fn is_node_ctx(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "NodeCtx")
        }
        Type::Paren(inner) => is_node_ctx(&inner.elem),
        Type::Group(inner) => is_node_ctx(&inner.elem),
        _ => false,
    }
}
