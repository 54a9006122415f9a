fn main() {
    let _flow = bwx::dataflow!(f {});
}
