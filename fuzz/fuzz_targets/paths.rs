//! The output writer's path rules against arbitrary small filesystems: each input builds a few
//! entries in a fresh directory (regular files, directories, symbolic links to any of them or
//! to nothing, links to links, FIFOs), then writes to one of them with `files::write_file` and
//! asks `files::check_replaceable_dir` about another. Errors are fine; what must hold: no
//! panic, a link stays a link, a FIFO stays a FIFO, a directory keeps its entries, a dangling
//! link's target is never created, a write that succeeds lands in the file the path resolves
//! to, and no temporary is left behind.
#![no_main]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tetriserve::files;

#[derive(Arbitrary, Debug)]
enum Entry {
    File(u8),
    Dir,
    /// A link to entry `n` (modulo the entries), which may not exist yet.
    Link(u8),
    /// A link to a name that is never created.
    Dangling,
    Fifo,
}

#[derive(Arbitrary, Debug)]
struct Case {
    entries: Vec<Entry>,
    write_to: u8,
    bytes: Vec<u8>,
    dir_check: u8,
    force: bool,
}

fn name(i: usize) -> String {
    format!("e{i}")
}

fn kind(p: &Path) -> Option<std::fs::FileType> {
    std::fs::symlink_metadata(p).ok().map(|m| m.file_type())
}

fuzz_target!(|case: Case| {
    let n = case.entries.len().min(6);
    if n == 0 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let at = |i: usize| dir.path().join(name(i));
    for (i, e) in case.entries.iter().take(n).enumerate() {
        match e {
            Entry::File(b) => std::fs::write(at(i), [*b]).unwrap(),
            Entry::Dir => {
                std::fs::create_dir(at(i)).unwrap();
                std::fs::write(at(i).join("inside"), "x").unwrap();
            }
            Entry::Link(t) => std::os::unix::fs::symlink(name(*t as usize % n), at(i)).unwrap(),
            Entry::Dangling => std::os::unix::fs::symlink("nowhere", at(i)).unwrap(),
            Entry::Fifo => {
                // Opening a FIFO with no reader blocks: only its kind is checked, never written.
                let c = std::ffi::CString::new(at(i).to_str().unwrap()).unwrap();
                unsafe { libc_mkfifo(c.as_ptr(), 0o644) };
            }
        }
    }
    let before: Vec<Option<std::fs::FileType>> = (0..n).map(|i| kind(&at(i))).collect();
    let target = at(case.write_to as usize % n);
    let resolved: Option<PathBuf> = std::fs::canonicalize(&target).ok();
    let is_fifo = resolved
        .as_ref()
        .and_then(|r| kind(r))
        .is_some_and(|k| k.is_fifo());
    if !is_fifo {
        if files::write_file(&target, &case.bytes).is_ok() {
            let written = resolved.unwrap_or_else(|| target.clone());
            assert_eq!(std::fs::read(&written).unwrap(), case.bytes);
        }
    }
    let _ = files::check_replaceable_dir(&at(case.dir_check as usize % n), case.force);
    for i in 0..n {
        let (was, now) = (before[i], kind(&at(i)));
        match was {
            Some(k) if k.is_symlink() => assert!(now.unwrap().is_symlink()),
            Some(k) if k.is_fifo() => assert!(now.unwrap().is_fifo()),
            Some(k) if k.is_dir() => {
                assert!(now.unwrap().is_dir());
                assert!(at(i).join("inside").exists());
            }
            _ => {}
        }
    }
    assert!(!dir.path().join("nowhere").exists());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
});

unsafe extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}
