use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Numbers;

#[derive(Clone, Debug)]
pub struct Position(u32);

#[bwx::source]
pub struct NumbersPart {
    #[state]
    next: Position,
}

#[bwx::source]
impl NumbersPart {
    fn open(_source: &Numbers, _part: &str) -> Result<Self, ConnectorError> {
        Ok(NumbersPart { next: Position(0) })
    }

    fn next_batch(&mut self, batch: &mut Vec<u32>) -> Result<BatchStatus, ConnectorError> {
        batch.push(self.next.0);
        self.next.0 += 1;
        Ok(BatchStatus::Active)
    }
}

fn main() {}
