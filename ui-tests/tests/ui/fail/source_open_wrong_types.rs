use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Numbers;

#[bwx::source]
pub struct NumbersPart {
    #[state]
    next: u32,
}

#[bwx::source]
impl NumbersPart {
    // The partition name is a `&str`, not a number.
    fn open(_source: &Numbers, part: u32) -> Result<Self, ConnectorError> {
        Ok(NumbersPart { next: part })
    }

    fn next_batch(&mut self, batch: &mut Vec<u32>) -> Result<BatchStatus, ConnectorError> {
        batch.push(self.next);
        self.next += 1;
        Ok(BatchStatus::Active)
    }
}

fn main() {}
