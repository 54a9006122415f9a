use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Numbers;

#[bwx::source]
pub struct NumbersPart {
    #[state]
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

    fn commit(&mut self, durable: &u32) -> Result<(), ConnectorError> {
        let _ = durable;
        Ok(())
    }
}

fn main() {}
