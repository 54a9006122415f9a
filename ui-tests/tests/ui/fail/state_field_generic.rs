use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Replay<T>(Vec<T>);

#[bwx::source]
pub struct ReplayPart<T> {
    #[state]
    pending: Vec<T>,
}

#[bwx::source]
impl<T: Clone + Send + Sync + 'static> ReplayPart<T> {
    fn open(source: &Replay<T>, _part: &str) -> Result<Self, ConnectorError> {
        Ok(ReplayPart { pending: source.0.clone() })
    }

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, ConnectorError> {
        batch.append(&mut self.pending);
        Ok(BatchStatus::Eof)
    }
}

fn main() {}
