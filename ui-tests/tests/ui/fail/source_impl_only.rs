use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Numbers;

// The attribute is missing here: the struct's `#[state]` fields are not generated.
pub struct NumbersPart {
    next: u32,
}

#[bwx::source]
impl NumbersPart {
    fn open(_source: &Numbers, _part: &str) -> Result<Self, ConnectorError> {
        Ok(NumbersPart { next: 0 })
    }

    fn next_batch(&mut self, batch: &mut Vec<u32>) -> Result<BatchStatus, ConnectorError> {
        batch.push(self.next);
        self.next += 1;
        Ok(BatchStatus::Active)
    }
}

fn main() {}
