use bwx::inputs::ConnectorError;

pub struct Lines;

#[bwx::sink]
pub struct LinesPart {
    #[state]
    written: u64,
}

#[bwx::sink]
impl LinesPart {
    fn open(_sink: &Lines, _part: &str) -> Result<Self, ConnectorError> {
        Ok(LinesPart { written: 0 })
    }

    fn write_batch(&mut self, batch: Vec<String>) -> Result<(), ConnectorError> {
        self.written += batch.len() as u64;
        Ok(())
    }
}

fn main() {}
