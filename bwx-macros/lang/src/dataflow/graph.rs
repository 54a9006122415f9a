//! A readable listing of a checked flow's steps, for snapshot tests and debugging.

use std::fmt;

use super::check::Plan;

/// The steps of a flow as the builder will record them.
pub struct Graph<'a>(pub &'a Plan);

impl fmt::Display for Graph<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flow {}", self.0.flow)?;
        for stmt in &self.0.stmts {
            for step in &stmt.steps {
                let op = step.op.map_or("sub-flow", |op| op.name);
                write!(
                    f,
                    "  {}.{} = {}({})",
                    self.0.flow,
                    step.id,
                    op,
                    step.inputs.join(", ")
                )?;
                let mut tags = Vec::new();
                if step.op.is_some_and(|op| op.stateful) {
                    tags.push("stateful");
                }
                if step.op.is_some_and(|op| op.keyed) {
                    tags.push("keyed");
                }
                if !tags.is_empty() {
                    write!(f, " [{}]", tags.join(", "))?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
