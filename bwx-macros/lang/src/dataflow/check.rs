//! Resolves a parsed flow into a plan of builder steps and checks what needs the whole
//! graph: step ids, references, ports, operator names and arities, stateful steps ending
//! their statements, unused streams, missing input or output. Types are left to rustc.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Path};

use super::ops::{self, Args, Form, OpDef, Output};
use super::parse::{FlowDef, Head, Statement, StreamRef};
use crate::diag::{Diagnostics, closest, did_you_mean};

/// The checked flow: one entry per statement, in order.
pub struct Plan {
    /// The flow id.
    pub flow: String,
    /// The statements.
    pub stmts: Vec<PlannedStmt>,
}

/// One statement: the steps of its chain, the last one named after the binding.
pub struct PlannedStmt {
    /// The binding.
    pub binding: Ident,
    /// What the binding holds.
    pub kind: BindKind,
    /// The steps, upstream first.
    pub steps: Vec<PlannedStep>,
    /// For `_name = stream;` (no operator): the stream, which the binding names too.
    pub alias: Option<TokenStream>,
}

/// One builder call.
pub struct PlannedStep {
    /// The step id (without the flow id).
    pub id: String,
    /// The operator, or `None` for a call of the user's operator (or sub-flow) function.
    pub op: Option<&'static OpDef>,
    /// The user's operator name (or sub-flow path), whose span the call carries.
    pub name: Span,
    /// The user's operator (or sub-flow) function.
    pub callee: Option<Path>,
    /// The user's operator is called as a method: its upstream is its first stream.
    pub method: bool,
    /// The upstream of a method: a stream reference, or `None` for the previous step.
    pub upstream: Option<TokenStream>,
    /// Upstream streams of free operators (`&a`, `&b.trues`).
    pub streams: Vec<TokenStream>,
    /// Names of the upstream streams, for the graph listing.
    pub inputs: Vec<String>,
    /// The user's arguments (and settings, in table order).
    pub args: Vec<TokenStream>,
}

/// What a binding holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    /// A stream.
    Stream,
    /// Named ports of this operator.
    Ports(&'static str, &'static [&'static str]),
    /// No stream: the step ends a branch (`output`).
    Nothing(&'static str),
    /// The value a sub-flow function returned; its fields are not known to the macro.
    Opaque,
}

struct Binding {
    index: usize,
    span: Span,
    kind: Option<BindKind>,
    used: bool,
    /// Its statement ends with an operator that counts as an output (`inspect`): the
    /// stream may go unused.
    is_output: bool,
}

struct Checker<'d> {
    diag: &'d mut Diagnostics,
    private: &'d TokenStream,
    flow: String,
    bindings: BTreeMap<String, Binding>,
    /// Step ids taken so far, with the statement (1-based) that took each.
    ids: BTreeMap<String, usize>,
    /// The statement being checked; bindings at or after it are not yet defined.
    current: usize,
    inputs: usize,
    outputs: usize,
    /// Sub-flow calls and unknown free calls: either may read a source or write a sink.
    opaque_heads: usize,
    /// A reference to no stream and no close name: which stream was meant is unknown.
    unknown_reference: bool,
    /// Bindings of statements whose operator is unknown.
    unclear: Vec<String>,
}

/// Checks `def`, reporting into `diag`. `complete` is false when some statements did not
/// parse; checks that would then report artefacts (undefined names, unused streams,
/// missing input or output) are skipped.
/// `private` is the path of the facade's hidden module, used for defaults of settings.
pub fn check(def: &FlowDef, private: &TokenStream, complete: bool, diag: &mut Diagnostics) -> Plan {
    let mut cx = Checker {
        diag,
        private,
        flow: def.name.to_string(),
        bindings: BTreeMap::new(),
        ids: BTreeMap::new(),
        current: 0,
        inputs: 0,
        outputs: 0,
        opaque_heads: 0,
        unknown_reference: false,
        unclear: Vec::new(),
    };
    for (index, stmt) in def.stmts.iter().enumerate() {
        let name = stmt.binding.to_string();
        cx.bindings.entry(name).or_insert(Binding {
            index,
            span: stmt.binding.span(),
            kind: None,
            used: false,
            is_output: false,
        });
    }
    let mut stmts = Vec::new();
    for (index, stmt) in def.stmts.iter().enumerate() {
        cx.current = index;
        let planned = cx.statement(stmt, complete);
        if let Some(b) = cx.bindings.get_mut(&stmt.binding.to_string())
            && b.index == index
        {
            b.kind = Some(planned.kind);
            b.is_output = planned
                .steps
                .last()
                .and_then(|step| step.op)
                .is_some_and(|op| op.counts_as_output);
        }
        stmts.push(planned);
    }
    if complete {
        cx.finish(&def.name);
    }
    Plan { flow: cx.flow, stmts }
}

impl Checker<'_> {
    fn statement(&mut self, stmt: &Statement, complete: bool) -> PlannedStmt {
        let binding = stmt.binding.to_string();
        let mut steps = Vec::new();
        let mut kind = BindKind::Stream;
        let last = stmt.chain.len();
        // Inner steps are `binding_operator`, numbered from 2 when an operator repeats.
        let mut inner_counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut inner_id = |op: &str, position: usize| -> String {
            if position == last {
                return binding.clone();
            }
            let n = inner_counts.entry(op.to_string()).or_insert(0);
            *n += 1;
            if *n == 1 {
                format!("{binding}_{op}")
            } else {
                format!("{binding}_{op}_{n}")
            }
        };
        let mut upstream: Option<TokenStream> = None;
        let mut upstream_name = String::new();
        let mut alias = None;
        match &stmt.head {
            Head::Ref(r) => {
                if let Some(tokens) = self.resolve(r, complete) {
                    upstream = Some(tokens);
                }
                upstream_name = describe(r);
                if stmt.chain.is_empty() && binding.starts_with('_') {
                    // `_meta = win.meta;`: the stream may go unused.
                    alias = upstream.take();
                    kind = BindKind::Opaque;
                } else if stmt.chain.is_empty() {
                    self.diag.error(
                        stmt.binding.span(),
                        format!(
                            "`{binding} = {upstream_name};` only renames a stream: apply an operator, e.g. `{binding} = {upstream_name}.map(|x| x);`"
                        ),
                    );
                }
            }
            Head::Call { callee, args } => {
                let id = inner_id(&path_name(callee), 0);
                match self.free_call(callee, args, id, last == 0, complete) {
                    Some((step, k)) => {
                        kind = k;
                        upstream_name = step.id.clone();
                        steps.push(step);
                    }
                    None => {
                        // An unknown free operator (reported): what it makes is unknown.
                        self.unclear.push(binding.clone());
                        kind = BindKind::Opaque;
                    }
                }
            }
        }
        for (k, call) in stmt.chain.iter().enumerate() {
            let name = call.name.to_string();
            let is_last = k + 1 == last;
            let id = inner_id(&name, k + 1);
            let Some(op) = ops::lookup(&name, Form::Method) else {
                let message = if ops::lookup(&name, Form::Free).is_some() {
                    format!(
                        "`{name}` is not a method of a stream: write it as a free call, `{binding} = {name}(a, b);`"
                    )
                } else if let Some(builtin) = ops::suggest(&name, Form::Method) {
                    format!("unknown operator `{name}`; did you mean `{builtin}`?")
                } else {
                    // An operator of the user's (`#[bwx::operator]`): `name(&flow, "id",
                    // &upstream, args...)`, checked by rustc.
                    let inputs = vec![std::mem::replace(&mut upstream_name, id.clone())];
                    let args = self.user_args(&call.args, complete, &mut Vec::new());
                    self.opaque_heads += 1;
                    kind = BindKind::Opaque;
                    steps.push(PlannedStep {
                        id,
                        op: None,
                        name: call.name.span(),
                        callee: Some(Path::from(call.name.clone())),
                        method: true,
                        upstream: upstream.take(),
                        streams: Vec::new(),
                        inputs,
                        args,
                    });
                    continue;
                };
                self.diag.error(call.name.span(), message);
                // What the statement makes is unknown: it is not reported unused, and it
                // may be the flow's input or output.
                self.unclear.push(binding.clone());
                self.opaque_heads += 1;
                kind = BindKind::Opaque;
                continue;
            };
            self.check_arity(op, call.args.len(), call.name.span());
            if !is_last {
                self.check_mid_chain(op, call.name.span(), &binding);
            }
            kind = bind_kind(op);
            self.count(op);
            let inputs = vec![std::mem::replace(&mut upstream_name, id.clone())];
            steps.push(PlannedStep {
                id,
                op: Some(op),
                name: call.name.span(),
                callee: None,
                method: true,
                upstream: upstream.take(),
                streams: Vec::new(),
                inputs,
                args: call.args.iter().map(ToTokens::to_token_stream).collect(),
            });
        }
        for step in &steps {
            // The statement's own id is marked at the binding, inner ids at their operator.
            let span = if step.id == binding {
                stmt.binding.span()
            } else {
                step.name
            };
            self.register_id(&step.id, span);
        }
        if steps.is_empty() && matches!(stmt.head, Head::Call { .. }) {
            // A sub-flow call or an unknown free operator: the binding is still a step id.
            self.register_id(&binding, stmt.binding.span());
        }
        PlannedStmt {
            binding: stmt.binding.clone(),
            kind,
            steps,
            alias,
        }
    }

    /// `input(..)`, `merge(..)`, `join(..)` or a sub-flow call.
    fn free_call(
        &mut self,
        callee: &Path,
        args: &[Expr],
        id: String,
        is_last: bool,
        complete: bool,
    ) -> Option<(PlannedStep, BindKind)> {
        let name = path_name(callee);
        let span = callee.span();
        let op = callee.get_ident().and_then(|_| ops::lookup(&name, Form::Free));
        let Some(op) = op else {
            if callee.get_ident().is_some() {
                // On an error below, the streams named in the call still count as used, so
                // the one mistake is reported once.
                for arg in args {
                    if let Some(r) = self.stream_arg(arg)
                        && let Some(b) = self.bindings.get_mut(&r.name.to_string())
                    {
                        b.used = true;
                    }
                }
                if ops::lookup(&name, Form::Method).is_some() {
                    self.diag.error(
                        span,
                        format!("`{name}` is a method of a stream: write `upstream.{name}(...)`"),
                    );
                    self.opaque_heads += 1;
                    return None;
                }
                if let Some(s) = ops::suggest(&name, Form::Free) {
                    self.diag
                        .error(span, format!("unknown operator `{name}`; did you mean `{s}`?"));
                    self.opaque_heads += 1;
                    return None;
                }
            }
            // An operator of the user's (`#[bwx::operator]`) or a sub-flow: an ordinary
            // function `f(&flow, "binding", args...)`.
            self.opaque_heads += 1;
            let mut inputs = Vec::new();
            let args = self.user_args(args, complete, &mut inputs);
            let step = PlannedStep {
                id,
                op: None,
                name: span,
                callee: Some(callee.clone()),
                method: false,
                upstream: None,
                streams: Vec::new(),
                inputs,
                args,
            };
            return Some((step, BindKind::Opaque));
        };
        if !is_last {
            self.check_mid_chain(op, span, &id);
        }
        self.count(op);
        let mut streams = Vec::new();
        let mut inputs = Vec::new();
        let planned_args = match op.args {
            Args::Exact(_) => {
                self.check_arity(op, args.len(), span);
                args.iter().map(ToTokens::to_token_stream).collect()
            }
            Args::Streams { min, max, settings } => {
                let mut given: Vec<Option<TokenStream>> = vec![None; settings.len()];
                for arg in args {
                    if let Expr::Assign(assign) = arg {
                        let key = assign.left.to_token_stream().to_string();
                        match settings.iter().position(|(s, _)| *s == key) {
                            Some(i) => given[i] = Some(assign.right.to_token_stream()),
                            None => self.diag.error(
                                assign.left.span(),
                                format!(
                                    "`{name}` has no setting `{key}`; its settings are {}",
                                    list(settings.iter().map(|(s, _)| *s))
                                ),
                            ),
                        }
                    } else if let Some(r) = self.stream_arg(arg) {
                        inputs.push(describe(&r));
                        if let Some(tokens) = self.resolve(&r, complete) {
                            streams.push(quote_spanned!(r.name.span()=> &#tokens));
                        }
                    } else {
                        self.diag.error(
                            arg.span(),
                            format!("`{name}` takes stream names (`{name}(a, b)`), not expressions"),
                        );
                    }
                }
                if inputs.len() < min {
                    let what = if min == 1 {
                        "a stream"
                    } else {
                        "at least two streams"
                    };
                    self.diag.error(
                        span,
                        format!("`{name}` needs {what}, found {}: `{name}(a, b)`", inputs.len()),
                    );
                } else if inputs.len() > max {
                    self.diag.error(
                        span,
                        format!(
                            "`{name}` takes at most {max} streams, found {}; join the rest in a second step",
                            inputs.len()
                        ),
                    );
                }
                let missing: Vec<&str> = given
                    .iter()
                    .zip(settings)
                    .filter(|(g, (_, default))| g.is_none() && default.is_none())
                    .map(|(_, (s, _))| *s)
                    .collect();
                if !missing.is_empty() {
                    let example = settings
                        .iter()
                        .filter(|(_, default)| default.is_none())
                        .map(|(s, _)| format!("{s} = ..."))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.diag.error(
                        span,
                        format!(
                            "`{name}` needs the setting{} {}: `{binding} = {name}(a, b, {example})`",
                            if missing.len() == 1 { "" } else { "s" },
                            list(missing.into_iter()),
                            binding = id,
                        ),
                    );
                }
                let private = self.private;
                given
                    .into_iter()
                    .zip(settings)
                    .filter_map(|(g, (_, default))| {
                        g.or_else(|| {
                            // A path default names an item of the facade; a literal stays as is.
                            let default: TokenStream = (*default)?.parse().unwrap_or_default();
                            let is_path = default.to_string().contains("::");
                            let default = if is_path {
                                quote!(#private::#default)
                            } else {
                                default
                            };
                            Some(ops::respan(&default, span))
                        })
                    })
                    .collect()
            }
        };
        let step = PlannedStep {
            id,
            op: Some(op),
            name: span,
            callee: None,
            method: false,
            upstream: None,
            streams,
            inputs,
            args: planned_args,
        };
        Some((step, bind_kind(op)))
    }

    /// The arguments of a call of the user's function: those naming bindings by reference
    /// (their names go to `inputs`), the others as written.
    fn user_args(&mut self, args: &[Expr], complete: bool, inputs: &mut Vec<String>) -> Vec<TokenStream> {
        args.iter()
            .map(|arg| match self.stream_arg(arg) {
                Some(r) if self.bindings.contains_key(&r.name.to_string()) => {
                    inputs.push(describe(&r));
                    let tokens = self.resolve(&r, complete).unwrap_or_else(|| r_tokens(&r));
                    quote_spanned!(r.name.span()=> &#tokens)
                }
                _ => arg.to_token_stream(),
            })
            .collect()
    }

    /// `a` or `a.port` as a stream argument of a free call.
    fn stream_arg(&self, arg: &Expr) -> Option<StreamRef> {
        match arg {
            Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(|name| StreamRef {
                name: name.clone(),
                port: None,
            }),
            Expr::Field(f) => match (&*f.base, &f.member) {
                (Expr::Path(p), syn::Member::Named(port)) if p.qself.is_none() => {
                    p.path.get_ident().map(|name| StreamRef {
                        name: name.clone(),
                        port: Some(port.clone()),
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Checks a reference and marks the binding used; returns its tokens when valid.
    fn resolve(&mut self, r: &StreamRef, complete: bool) -> Option<TokenStream> {
        let name = r.name.to_string();
        let current = self.current;
        let Some(binding) = self.bindings.get_mut(&name) else {
            if complete {
                let defined = self
                    .bindings
                    .iter()
                    .filter(|(_, b)| b.index < current)
                    .map(|(n, _)| n.as_str());
                let suggestion = closest(&name, defined).map(str::to_string);
                self.diag.error(
                    r.name.span(),
                    format!("no stream named `{name}`{}", did_you_mean(suggestion.as_deref())),
                );
                // The stream meant is used, not "never used": one mistake, one error. With
                // no guess which, no stream is reported unused this time.
                match suggestion.and_then(|s| self.bindings.get_mut(&s)) {
                    Some(meant) => meant.used = true,
                    None => self.unknown_reference = true,
                }
            }
            return None;
        };
        if binding.index >= current {
            // Its definition still counts as used: one mistake, one error.
            binding.used = true;
            let message = if binding.index == current {
                format!("`{name}` is used in its own definition; a flow has no cycles")
            } else {
                format!(
                    "`{name}` is defined later (statement {}); a stream must be defined before it is used",
                    binding.index + 1
                )
            };
            self.diag.error(r.name.span(), message);
            return None;
        }
        binding.used = true;
        let kind = binding.kind?;
        match (kind, &r.port) {
            (BindKind::Stream, None) | (BindKind::Opaque, _) => Some(r_tokens(r)),
            (BindKind::Stream, Some(port)) => {
                self.diag.error(
                    port.span(),
                    format!("`{name}` is a single stream and has no port `{port}`"),
                );
                None
            }
            (BindKind::Ports(op, ports), None) => {
                self.diag.error(
                    r.name.span(),
                    format!(
                        "`{name}` is a `{op}` with ports {}: use one of them, e.g. `{name}.{}`",
                        list(ports.iter().copied()),
                        ports.first().copied().unwrap_or_default()
                    ),
                );
                None
            }
            (BindKind::Ports(op, ports), Some(port)) => {
                let port_name = port.to_string();
                if ports.contains(&port_name.as_str()) {
                    Some(r_tokens(r))
                } else {
                    self.diag.error(
                        port.span(),
                        format!(
                            "unknown port `{port_name}` of `{name}` (a `{op}`); its ports are {}{}",
                            list(ports.iter().copied()),
                            did_you_mean(closest(&port_name, ports.iter().copied()))
                        ),
                    );
                    None
                }
            }
            (BindKind::Nothing(op), _) => {
                self.diag.error(
                    r.name.span(),
                    format!("`{name}` is an `{op}` step and has no stream to read"),
                );
                None
            }
        }
    }

    fn check_arity(&mut self, op: &OpDef, given: usize, span: Span) {
        if let Args::Exact(n) = op.args
            && n != given
        {
            let plural = if n == 1 { "" } else { "s" };
            self.diag.error(
                span,
                format!(
                    "`{}` takes {n} argument{plural}, found {given} (the step id is not written: it is the binding)",
                    op.name
                ),
            );
        }
    }

    fn check_mid_chain(&mut self, op: &OpDef, span: Span, binding: &str) {
        let name = op.name;
        let message = if op.stateful {
            format!(
                "`{name}` is stateful, so it must end its statement: its recovery state is stored under the binding's name. Split the chain: `x = ...{name}(...);` then continue from `x`"
            )
        } else {
            match op.output {
                Output::Nothing => format!("`{name}` produces no stream, so nothing can follow it"),
                Output::Ports(ports) => format!(
                    "`{name}` has ports {}, so it must end its statement; continue from `{binding}.{}`",
                    list(ports.iter().copied()),
                    ports.first().copied().unwrap_or_default()
                ),
                Output::Stream => return,
            }
        };
        self.diag.error(span, message);
    }

    fn count(&mut self, op: &OpDef) {
        match (op.form, op.output) {
            (Form::Free, _) if op.name == "input" => self.inputs += 1,
            (_, Output::Nothing) => self.outputs += 1,
            _ if op.counts_as_output => self.outputs += 1,
            _ => {}
        }
    }

    fn register_id(&mut self, id: &str, span: Span) {
        if let Some(first) = self.ids.get(id) {
            self.diag.error(
                span,
                format!(
                    "duplicate step id `{}.{id}`: statement {first} already makes a step with it; give each step its own name",
                    self.flow
                ),
            );
        } else {
            self.ids.insert(id.to_string(), self.current + 1);
        }
    }

    fn finish(&mut self, name: &Ident) {
        let mut unused: Vec<(&String, &Binding)> = self
            .bindings
            .iter()
            .filter(|(n, b)| {
                !self.unknown_reference
                    && !self.unclear.contains(n)
                    && !b.used
                    && !b.is_output
                    && !n.starts_with('_')
                    && !matches!(b.kind, Some(BindKind::Nothing(_)) | None)
            })
            .collect();
        unused.sort_by_key(|(_, b)| b.index);
        let errors: Vec<syn::Error> = unused
            .into_iter()
            .map(|(n, b)| {
                syn::Error::new(
                    b.span,
                    format!(
                        "stream `{n}` is never used: send it to an operator or an `output`, or name it `_{n}` to allow that"
                    ),
                )
            })
            .collect();
        for e in errors {
            self.diag.push(e);
        }
        // A sub-flow may read a source or write a sink itself; and with other errors the
        // flow's shape is not clear enough to say what it lacks.
        if self.opaque_heads == 0 && self.diag.is_empty() {
            let message = match (self.inputs, self.outputs) {
                (0, 0) => format!(
                    "flow `{name}` has no `input` and no `output`: add a source and a sink, e.g. `lines = input(source);` and `out = lines.output(sink);`"
                ),
                (0, _) => {
                    format!("flow `{name}` has no `input`: add a source, e.g. `lines = input(source);`")
                }
                (_, 0) => {
                    format!("flow `{name}` has no `output`: add a sink, e.g. `out = stream.output(sink);`")
                }
                _ => return,
            };
            self.diag.error(name.span(), message);
        }
    }
}

fn bind_kind(op: &'static OpDef) -> BindKind {
    match op.output {
        Output::Stream => BindKind::Stream,
        Output::Ports(ports) => BindKind::Ports(op.name, ports),
        Output::Nothing => BindKind::Nothing(op.name),
    }
}

fn r_tokens(r: &StreamRef) -> TokenStream {
    let name = &r.name;
    match &r.port {
        Some(port) => quote_spanned!(port.span()=> #name.#port),
        None => quote!(#name),
    }
}

fn describe(r: &StreamRef) -> String {
    match &r.port {
        Some(port) => format!("{}.{port}", r.name),
        None => r.name.to_string(),
    }
}

fn path_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}
