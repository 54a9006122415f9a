//! Drawing a flow: Mermaid and JSON renderings of the recorded steps.

use serde::Serialize;

use crate::flow::Dataflow;

#[derive(Serialize)]
struct JsonFlow<'a> {
    flow_id: &'a str,
    steps: Vec<JsonStep<'a>>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    step_id: &'a str,
    operator: &'static str,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

impl Dataflow {
    /// The flow as a Mermaid flowchart: one node per step, one edge per stream use.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).map("double", |x| x * 2).output("out", TestingSink::new());
    /// let chart = flow.to_mermaid();
    /// assert!(chart.contains("f_inp --> f_double"), "{chart}");
    /// ```
    pub fn to_mermaid(&self) -> String {
        let graph = self.lock();
        let mut out = String::from("flowchart TD\n");
        out.push_str(&format!("subgraph \"{}\"\n", graph.flow_id));
        for step in &graph.steps {
            out.push_str(&format!(
                "{}[\"{} ({})\"]\n",
                node(step.id.as_str()),
                step.id,
                step.operator
            ));
        }
        for consumer in &graph.steps {
            for input in &consumer.inputs {
                if let Some(producer) = graph.steps.iter().find(|s| s.outputs.contains(input)) {
                    out.push_str(&format!(
                        "{} --> {}\n",
                        node(producer.id.as_str()),
                        node(consumer.id.as_str())
                    ));
                }
            }
        }
        out.push_str("end\n");
        out
    }

    /// The flow as JSON: the flow id and every step with its operator and the ids of the
    /// streams it reads and makes.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).output("out", TestingSink::new());
    /// let json = flow.to_json();
    /// assert!(json.contains(r#""step_id":"f.out","operator":"output","inputs":[0]"#), "{json}");
    /// ```
    pub fn to_json(&self) -> String {
        let graph = self.lock();
        let flow = JsonFlow {
            flow_id: &graph.flow_id,
            steps: graph
                .steps
                .iter()
                .map(|s| JsonStep {
                    step_id: s.id.as_str(),
                    operator: s.operator,
                    inputs: s.inputs.iter().map(|i| i.0).collect(),
                    outputs: s.outputs.iter().map(|o| o.0).collect(),
                })
                .collect(),
        };
        // Plain strings and numbers only: serialization cannot fail.
        serde_json::to_string(&flow).unwrap_or_default()
    }
}

/// A Mermaid node id for a step id: dots become underscores (the label keeps the dots).
fn node(step_id: &str) -> String {
    step_id.replace('.', "_")
}
