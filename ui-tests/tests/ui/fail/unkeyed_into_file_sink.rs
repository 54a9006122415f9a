use bwx::connectors::files::FileSink;
use bwx::testing::TestingSource;

fn main() {
    let _flow = bwx::dataflow!(f {
        lines = input(TestingSource::new(vec!["a".to_string()]));
        out   = lines.output(FileSink::new("out.txt"));
    });
}
