use bwx::prelude::*;

struct Scaler(f64);

impl Scaler {
    #[bwx::operator]
    fn scale(&self, up: &Stream<f64>) -> Stream<f64> {
        let factor = self.0;
        up.map("scale", move |x| x * factor)
    }
}

fn main() {}
