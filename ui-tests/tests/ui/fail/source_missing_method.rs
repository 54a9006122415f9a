use bwx::inputs::ConnectorError;

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
}

fn main() {}
