//! Drawing a flow: Mermaid, Graphviz DOT and JSON renderings of the recorded steps, in
//! Bytewax's layout (`python -m bytewax.visualize`).
//!
//! Every step has named ports: `up` and `down` for one input and one output, `ups` for
//! [`merge`](crate::Dataflow::merge)'s inputs, `sides` for a join's, `trues`/`falses` for
//! [`branch`](crate::Stream::branch) and `down`/`late`/`meta` for a windowing step.

use serde::Serialize;

use crate::flow::{Dataflow, StepInfo, StreamId};

/// Bytewax's rendered dataflow (`visualize.to_json`).
#[derive(Serialize)]
struct RenderedDataflow {
    typ: &'static str,
    flow_id: String,
    substeps: Vec<RenderedOperator>,
}

#[derive(Serialize)]
struct RenderedOperator {
    typ: &'static str,
    op_type: &'static str,
    step_name: String,
    step_id: String,
    inp_ports: Vec<RenderedPort>,
    out_ports: Vec<RenderedPort>,
    substeps: Vec<RenderedOperator>,
}

#[derive(Serialize)]
struct RenderedPort {
    typ: &'static str,
    port_name: String,
    port_id: String,
    from_port_ids: Vec<String>,
    from_stream_ids: Vec<String>,
}

/// The names of a step's input and output ports.
fn port_names(step: &StepInfo) -> (Vec<String>, Vec<String>) {
    let numbered = |base: &str, n: usize| -> Vec<String> {
        match n {
            1 => vec![base.to_string()],
            _ => (0..n).map(|i| format!("{base}_{i}")).collect(),
        }
    };
    let inputs = match (step.operator, step.inputs.len()) {
        (_, 0) => Vec::new(),
        ("merge", _) => vec!["ups".to_string()],
        ("join" | "join_window", _) => vec!["sides".to_string()],
        (_, n) => numbered("up", n),
    };
    let outputs = match (step.operator, step.outputs.len()) {
        ("branch", 2) => vec!["trues".to_string(), "falses".to_string()],
        (_, 3) => vec!["down".to_string(), "late".to_string(), "meta".to_string()],
        (_, n) => numbered("down", n),
    };
    (inputs, outputs)
}

/// One edge of the drawing: a stream from one step's port to another's.
struct Edge<'a> {
    from: &'a StepInfo,
    from_port: String,
    to: &'a StepInfo,
    to_port: String,
}

/// Every edge, in the order of the consuming steps and their inputs.
fn edges(steps: &[StepInfo]) -> Vec<Edge<'_>> {
    let producer = |stream: StreamId| {
        steps.iter().find_map(|s| {
            let index = s.outputs.iter().position(|o| *o == stream)?;
            Some((s, port_names(s).1.swap_remove(index)))
        })
    };
    let mut out = Vec::new();
    for to in steps {
        let names = port_names(to).0;
        for (i, stream) in to.inputs.iter().enumerate() {
            let Some((from, from_port)) = producer(*stream) else {
                continue;
            };
            let to_port = names.get(i).or(names.first()).cloned().unwrap_or_default();
            out.push(Edge {
                from,
                from_port,
                to,
                to_port,
            });
        }
    }
    out
}

/// The step's name: its id without the flow's prefix.
fn step_name<'a>(flow_id: &str, step: &'a StepInfo) -> &'a str {
    let id = step.id.as_str();
    id.strip_prefix(flow_id)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(id)
}

impl Dataflow {
    /// The flow as a Mermaid flowchart in Bytewax's layout: a subgraph for the flow, one
    /// node per step whose id is the dotted step id, and edges labelled `down → up` with
    /// the ports they join.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).map("double", |x| x * 2).output("out", TestingSink::new());
    /// assert_eq!(flow.to_mermaid(), "\
    /// flowchart TD
    /// subgraph \"f (Dataflow)\"
    /// f.inp[\"inp (input)\"]
    /// f.double[\"double (map)\"]
    /// f.inp -- \"down → up\" --> f.double
    /// f.out[\"out (output)\"]
    /// f.double -- \"down → up\" --> f.out
    /// end
    /// ");
    /// ```
    pub fn to_mermaid(&self) -> String {
        let graph = self.lock();
        let mut out = format!("flowchart TD\nsubgraph \"{} (Dataflow)\"\n", graph.flow_id);
        let edges = edges(&graph.steps);
        for step in &graph.steps {
            out.push_str(&format!(
                "{}[\"{} ({})\"]\n",
                step.id,
                step_name(&graph.flow_id, step),
                step.operator
            ));
            for edge in edges.iter().filter(|e| e.to.id == step.id) {
                out.push_str(&format!(
                    "{} -- \"{} → {}\" --> {}\n",
                    edge.from.id, edge.from_port, edge.to_port, edge.to.id
                ));
            }
        }
        out.push_str("end\n");
        out
    }

    /// The flow as a Graphviz digraph: one box per step, edges labelled with their ports.
    /// Render it with `dot -Tsvg`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).output("out", TestingSink::new());
    /// let dot = flow.to_dot();
    /// assert!(dot.contains("\"f.inp\" -> \"f.out\" [label=\"down → up\"];"), "{dot}");
    /// ```
    pub fn to_dot(&self) -> String {
        let graph = self.lock();
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = format!(
            "digraph {} {{\n  label={};\n  rankdir=TB;\n  node [shape=box];\n",
            quote(&graph.flow_id),
            quote(&format!("{} (Dataflow)", graph.flow_id))
        );
        for step in &graph.steps {
            out.push_str(&format!(
                "  {} [label={}];\n",
                quote(step.id.as_str()),
                quote(&format!(
                    "{} ({})",
                    step_name(&graph.flow_id, step),
                    step.operator
                ))
            ));
        }
        for edge in edges(&graph.steps) {
            out.push_str(&format!(
                "  {} -> {} [label={}];\n",
                quote(edge.from.id.as_str()),
                quote(edge.to.id.as_str()),
                quote(&format!("{} → {}", edge.from_port, edge.to_port))
            ));
        }
        out.push_str("}\n");
        out
    }

    /// The flow as JSON in the shape of Bytewax's `visualize.to_json` (a
    /// `RenderedDataflow` of `RenderedOperator`s with `RenderedPort`s): what `GET
    /// /dataflow` serves.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).output("out", TestingSink::new());
    /// let json: serde_json::Value = serde_json::from_str(&flow.to_json()).unwrap();
    /// let out = &json["substeps"][1];
    /// assert_eq!(out["step_id"], "f.out");
    /// assert_eq!(out["inp_ports"][0]["port_id"], "f.out.up");
    /// assert_eq!(out["inp_ports"][0]["from_port_ids"][0], "f.inp.down");
    /// ```
    pub fn to_json(&self) -> String {
        let graph = self.lock();
        let edges = edges(&graph.steps);
        let port = |step: &StepInfo, name: &str, from: Vec<String>| RenderedPort {
            typ: "RenderedPort",
            port_name: name.to_string(),
            port_id: format!("{}.{name}", step.id),
            from_stream_ids: from.clone(),
            from_port_ids: from,
        };
        let substeps = graph
            .steps
            .iter()
            .map(|step| {
                let (inputs, outputs) = port_names(step);
                let inp_ports = inputs
                    .iter()
                    .map(|name| {
                        let from = edges
                            .iter()
                            .filter(|e| e.to.id == step.id && e.to_port == *name)
                            .map(|e| format!("{}.{}", e.from.id, e.from_port))
                            .collect();
                        port(step, name, from)
                    })
                    .collect();
                let out_ports = outputs.iter().map(|name| port(step, name, Vec::new())).collect();
                RenderedOperator {
                    typ: "RenderedOperator",
                    op_type: step.operator,
                    step_name: step_name(&graph.flow_id, step).to_string(),
                    step_id: step.id.to_string(),
                    inp_ports,
                    out_ports,
                    substeps: Vec::new(),
                }
            })
            .collect();
        let flow = RenderedDataflow {
            typ: "RenderedDataflow",
            flow_id: graph.flow_id.clone(),
            substeps,
        };
        // Plain strings only: serialization cannot fail.
        serde_json::to_string_pretty(&flow).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::Dataflow;
    use crate::testing::{TestingSink, TestingSource};

    #[test]
    fn ports_of_branch_merge_and_windows_are_named_as_in_bytewax() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32, 2]));
        let split = nums.branch("even", |x| x % 2 == 0);
        let both = flow.merge("both", [&split.trues, &split.falses]);
        both.output("out", TestingSink::new());
        let chart = flow.to_mermaid();
        assert!(chart.contains("f.inp -- \"down → up\" --> f.even"), "{chart}");
        assert!(chart.contains("f.even -- \"trues → ups\" --> f.both"), "{chart}");
        assert!(chart.contains("f.even -- \"falses → ups\" --> f.both"), "{chart}");
        let json: serde_json::Value = serde_json::from_str(&flow.to_json()).unwrap();
        let both = &json["substeps"][2];
        assert_eq!(both["op_type"], "merge");
        assert_eq!(
            both["inp_ports"][0]["from_port_ids"],
            serde_json::json!(["f.even.trues", "f.even.falses"])
        );
        let dot = flow.to_dot();
        assert!(dot.starts_with("digraph \"f\" {"), "{dot}");
        assert!(
            dot.contains("\"f.even\" -> \"f.both\" [label=\"falses → ups\"];"),
            "{dot}"
        );
    }
}
