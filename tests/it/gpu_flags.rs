//! The GPU commands' flags and environment on a machine without a GPU: `profile`'s flags are
//! checked (and refused by name) before any device is looked for, `--quick` is accepted, an
//! unknown attention backend is refused naming the variable, and nothing is left behind.

use std::process::{Command, Output};

fn profile(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tetriserve"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("profile")
        .args(args)
        // No device visible, whatever the machine has.
        .env("CUDA_VISIBLE_DEVICES", "");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("runs the binary")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn profile_flags_are_refused_by_name_before_any_device_is_needed() {
    for (args, flag, hint) in [
        (vec!["--quick", "--batches", "0"], "--batches", "1 or more"),
        (vec!["--repeats", "0"], "--repeats 0", "at least one"),
        (
            vec!["--quick", "--degrees", "3"],
            "--degrees: 3",
            "power of two",
        ),
        (vec!["--resolutions", "0"], "--resolutions", ""),
    ] {
        let o = profile(&args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains(flag) && e.contains(hint), "{args:?}: {e}");
        assert!(
            !e.contains("panicked") && !e.contains("no CUDA device"),
            "{e}"
        );
    }
}

#[test]
fn an_unknown_attention_backend_is_refused_naming_the_variable() {
    let o = profile(&["--quick"], &[("TETRISERVE_ATTENTION", "flash")]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("TETRISERVE_ATTENTION=flash") && e.contains("cudnn, fused or unfused"),
        "{e}"
    );
}

#[test]
fn a_quick_profile_without_a_gpu_is_a_clean_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("first.csv");
    let o = profile(&["--quick", "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("no CUDA device") && !e.contains("panicked"),
        "{e}"
    );
    assert!(!out.exists(), "no file for a profile that measured nothing");
}
