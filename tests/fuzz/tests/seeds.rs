//! Every committed seed, crashes found once among them, runs through its
//! target without libFuzzer: `cd tests/fuzz && cargo test`.

use std::path::Path;

fn each_seed(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn engineio_seeds() {
    each_seed("engineio", utalk_fuzz::engineio);
}

#[test]
fn socketio_seeds() {
    each_seed("socketio", utalk_fuzz::socketio);
}

#[test]
fn event_args_seeds() {
    each_seed("event_args", utalk_fuzz::event_args);
}

#[test]
fn twilio_form_seeds() {
    each_seed("twilio_form", utalk_fuzz::twilio_form);
}
