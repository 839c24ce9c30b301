//! Where outputs go: the one writer of output files and the rules of the paths it writes
//! through, the lock on an output directory, and the temporary names of unfinished outputs.
//!
//! The rules, for a file (`trace generate -o`, `trace import -o`, `compare --csv`, results,
//! manifests): a path that does not exist or names a regular file gets the new contents
//! atomically (a hidden temporary sibling renamed onto it); a symbolic link is followed and
//! its target written by the same rules (the link stays a link); a character device or a FIFO
//! (`/dev/null`, `/dev/stdout`, a pipe) is written through, never replaced; a directory, a block
//! device, a socket or a dangling link is refused. For an output directory
//! ([`check_replaceable_dir`]): `--force` replaces only a directory tetriserve wrote (it holds
//! [`MADE_BY`], or only names tetriserve writes), never a file, a link or anyone else's
//! directory.
//!
//! A process that writes into a directory for a while (a sweep, a merge) holds its
//! [`DirLock`]; a second one is refused, naming the holder's pid. Temporary names carry the
//! writer's pid (`.NAME.tmp-PID`): they are removed when the process is interrupted (SIGINT,
//! SIGTERM: [`install_cleanup`]), and a later run removes those of processes that are gone
//! ([`remove_stale_temps`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The file that marks an output directory as tetriserve's, recording the version that made
/// it.
pub const MADE_BY: &str = "made-by.json";

/// This program's version, as output files record it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The contents of [`MADE_BY`].
pub fn made_by_json() -> String {
    format!("{{\n  \"tool\": \"tetriserve\",\n  \"version\": \"{VERSION}\"\n}}\n")
}

/// The temporary sibling name of `name` for this process: `.NAME.tmp-PID`.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp-{}", std::process::id())
}

/// `path`'s parent directory (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to the file `path` by the rules of this module (see the module header).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = writable_target(path)?;
    match target {
        Target::Replace(file) => replace_file(&file, bytes),
        Target::Through(file) => {
            let mut f = OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|e| Error::io(&file, e))?;
            f.write_all(bytes)
                .and_then(|_| f.flush())
                .map_err(|e| Error::io(&file, e))
        }
    }
}

/// Opens the file `path` to be written row by row (`profile --output`: an interrupted
/// measurement keeps its rows), by the rules of [`write_file`] except that a regular file is
/// truncated and written in place (through a link, its target), not replaced at the end.
pub fn create_streamed(path: &Path) -> Result<File> {
    match writable_target(path)? {
        Target::Replace(file) => File::create(&file).map_err(|e| Error::io(&file, e)),
        Target::Through(file) => OpenOptions::new()
            .write(true)
            .open(&file)
            .map_err(|e| Error::io(&file, e)),
    }
}

/// Where [`write_file`] puts the bytes.
#[derive(Debug, PartialEq)]
enum Target {
    /// A regular file (or none yet): replaced atomically.
    Replace(PathBuf),
    /// A character device or FIFO: written through.
    Through(PathBuf),
}

fn refuse(path: &Path, what: &str, hint: &str) -> Error {
    Error::config_hint(format!("{} {what}", path.display()), hint)
}

fn writable_target(path: &Path) -> Result<Target> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Target::Replace(path.to_path_buf()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        let real = std::fs::canonicalize(path).map_err(|_| {
            let to = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            refuse(
                path,
                &format!("is a symbolic link to {to}, which does not exist; tetriserve writes through a link only to an existing file"),
                "give the path of the file itself, or remove the link",
            )
        })?;
        // The canonical path holds no link, so this recursion ends.
        return writable_target(&real);
    }
    if kind.is_file() {
        return Ok(Target::Replace(path.to_path_buf()));
    }
    if kind.is_dir() {
        return Err(refuse(
            path,
            "is a directory; expected a file to write",
            "give a file name, e.g. DIR/out.csv",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_fifo() {
            return Ok(Target::Through(path.to_path_buf()));
        }
    }
    Err(refuse(
        path,
        "is neither a regular file nor a character device or FIFO (a block device or a socket); tetriserve does not write there",
        "give the path of a regular file",
    ))
}

/// Replaces the regular file `path` (or creates it): written under a temporary sibling that is
/// renamed onto it, so that no reader sees half of it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = parent_of(path);
    remove_stale_temps(parent, Some(&name));
    let tmp = parent.join(temp_name(&name));
    let _ = std::fs::remove_file(&tmp);
    let _guard = TempGuard::new(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_data()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // Named by the path the user gave: the temporary name is an implementation detail.
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Names a tetriserve output directory may hold: its marker, the files of a run, a
/// simulation's comparison.
const OWN_FILES: &[&str] = &[
    MADE_BY,
    "comparison.csv",
    "requests.csv",
    "works.csv",
    "summary.json",
    "timeline.json",
];

/// Whether the directory `dir` is one tetriserve wrote: it holds [`MADE_BY`], or (made by an
/// older version) only files tetriserve writes, directly or in subdirectories one level down.
fn is_own_dir(dir: &Path) -> bool {
    if dir.join(MADE_BY).is_file() {
        return true;
    }
    let own_files = |d: &Path, depth: u32| -> bool {
        fn walk(d: &Path, depth: u32) -> bool {
            let Ok(entries) = std::fs::read_dir(d) else {
                return false;
            };
            for e in entries {
                let Ok(e) = e else { return false };
                let Ok(t) = e.file_type() else { return false };
                let name = e.file_name().to_string_lossy().into_owned();
                let ok = if t.is_dir() {
                    depth > 0 && walk(&e.path(), depth - 1)
                } else {
                    t.is_file() && OWN_FILES.contains(&name.as_str())
                };
                if !ok {
                    return false;
                }
            }
            true
        }
        walk(d, depth)
    };
    own_files(dir, 1)
}

/// Refuses an existing output directory unless `force`, and with `force` anything but a
/// directory tetriserve wrote. Commands call it before any work, so that a long run does not
/// end in this error.
pub fn check_replaceable_dir(dir: &Path, force: bool) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            dir,
            "is a symbolic link; an output directory is written in place of its path, which would replace the link, not what it points to",
            "give the directory's own path, or another --out",
        ));
    }
    if !meta.is_dir() {
        return Err(refuse(
            dir,
            "exists and is not a directory; --force replaces only an output directory tetriserve wrote",
            "choose another --out, or remove the file yourself",
        ));
    }
    if !force {
        return Err(Error::config_hint(
            format!("output directory {} already exists", dir.display()),
            "pass --force to replace it, or choose another --out",
        ));
    }
    if !is_own_dir(dir) {
        return Err(refuse(
            dir,
            &format!(
                "exists and holds files tetriserve did not write (it has no {MADE_BY}); --force replaces only an output directory tetriserve wrote"
            ),
            "choose another --out, or remove the directory yourself",
        ));
    }
    Ok(())
}

/// Whether the process `pid` is running (on systems without `/proc`, every pid counts as
/// running, so nothing of another process is ever removed).
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// The pid in a temporary name `.NAME.tmp-PID` (or `.NAME.tmp-PID.EXT`), and NAME.
fn temp_owner(file_name: &str) -> Option<(&str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    let (name, tail) = rest.rsplit_once(".tmp-")?;
    // `.old`, `.png`: what follows the pid.
    let digits = tail.split('.').next().unwrap_or(tail);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, digits.parse().ok()?))
}

/// Removes the temporary names in `dir` (of `name` only, or of any output) left by processes
/// that are no longer running: an interrupted run's `.NAME.tmp-PID`. Best effort: what cannot
/// be removed stays.
pub fn remove_stale_temps(dir: &Path, name: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some((of, pid)) = temp_owner(&file_name) else {
            continue;
        };
        if name.is_some_and(|n| n != of) || pid_alive(pid) {
            continue;
        }
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&p);
            }
            Err(_) => {}
        }
    }
}

/// Temporary paths of this process, removed if it is interrupted.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary path registered for removal on interruption while the guard lives.
pub struct TempGuard {
    path: PathBuf,
}

impl TempGuard {
    pub fn new(path: &Path) -> TempGuard {
        if let Ok(mut t) = TEMPS.lock() {
            t.push(path.to_path_buf());
        }
        TempGuard {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Ok(mut t) = TEMPS.lock()
            && let Some(i) = t.iter().rposition(|p| *p == self.path)
        {
            t.remove(i);
        }
    }
}

/// Removes every registered temporary path (and lock file). Called on interruption.
pub fn remove_temps() {
    let paths = match TEMPS.lock() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for p in paths.iter().rev() {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP: it removes the temporary outputs
/// and lock files of this process, then exits with status 130. Call once, from `main`.
pub fn install_cleanup() {
    let _ = ctrlc::set_handler(|| {
        remove_temps();
        eprintln!("\ninterrupted: temporary outputs removed");
        std::process::exit(130);
    });
}

/// One output file of a directory held by this process (a sweep's `results.csv`, a shard's
/// `results.shard-I-of-N.csv`): other tetriserve processes that try to take it are refused,
/// naming the holder, until it is dropped. The lock is the file `.NAME.lock` beside it,
/// locked with `flock` (released by the system if the process dies) and removed on drop.
pub struct DirLock {
    held: Option<(PathBuf, File, TempGuard)>,
}

impl DirLock {
    /// Takes the output `name` of the directory `dir` (which exists) for `what` (`sweep`,
    /// `merge`), or says who holds it. In a directory this process cannot write, nothing is
    /// locked (nothing can be written there either; a command that needs to write fails on
    /// its first write, naming the file).
    pub fn acquire(dir: &Path, name: &str, what: &str) -> Result<DirLock> {
        let path = dir.join(format!(".{name}.lock"));
        for _ in 0..8 {
            if let Ok(m) = std::fs::symlink_metadata(&path)
                && !m.is_file()
            {
                return Err(refuse(
                    &path,
                    "is not a regular file; it should be tetriserve's lock file",
                    "remove it",
                ));
            }
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path);
            let mut file = match opened {
                Ok(f) => f,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
                {
                    return Ok(DirLock { held: None });
                }
                Err(e) => return Err(Error::io(&path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = std::io::Read::read_to_string(&mut file, &mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() {
                        "another tetriserve process".to_string()
                    } else {
                        format!("another tetriserve process ({holder})")
                    };
                    return Err(Error::config_hint(
                        format!(
                            "{} is being written by {holder} ; its lock is {}",
                            dir.join(name).display(),
                            path.display()
                        ),
                        "wait for it to finish, or give another --out",
                    ));
                }
                // A filesystem without locks: go on unlocked rather than refuse to work.
                Err(std::fs::TryLockError::Error(e))
                    if e.kind() == std::io::ErrorKind::Unsupported =>
                {
                    return Ok(DirLock { held: None });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            // The holder before us may have removed the file after we opened it: then our
            // lock is on a file no one else sees, so start again.
            if !same_file(&file, &path) {
                continue;
            }
            let _ = file.set_len(0);
            let _ = write!(file, "pid {}, {what}", std::process::id());
            let _ = file.flush();
            let guard = TempGuard::new(&path);
            return Ok(DirLock {
                held: Some((path, file, guard)),
            });
        }
        Err(Error::config(format!(
            "{}: could not take the lock (it kept changing)",
            path.display()
        )))
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked; the file handle (and the lock) go after.
        if let Some((path, _, _)) = &self.held {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_the_pid() {
        assert_eq!(temp_owner(".run.tmp-123"), Some(("run", 123)));
        assert_eq!(temp_owner(".run.tmp-123.old"), Some(("run", 123)));
        assert_eq!(temp_owner(".a.tmp-b.tmp-9"), Some(("a.tmp-b", 9)));
        assert_eq!(temp_owner("run.tmp-123"), None);
        assert_eq!(temp_owner(".run.tmp-"), None);
        assert_eq!(temp_owner(".run.tmp-12x"), None);
    }

    #[test]
    fn files_are_replaced_links_followed_and_directories_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        write_file(&real, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        #[cfg(unix)]
        {
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            write_file(&link, b"through").unwrap();
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(std::fs::read_to_string(&real).unwrap(), "through");
            let dangling = dir.path().join("dangling.csv");
            std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
            let e = write_file(&dangling, b"x").unwrap_err().to_string();
            assert!(e.contains("does not exist"), "{e}");
            assert!(!dir.path().join("nothing").exists());
            write_file(Path::new("/dev/null"), b"discarded").unwrap();
            assert!(
                std::fs::metadata("/dev/null")
                    .unwrap()
                    .file_type()
                    .is_char_device()
            );
        }
        let e = write_file(dir.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn force_replaces_only_tetriserve_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(check_replaceable_dir(&file, true).is_err());
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("thesis.tex"), "x").unwrap();
        assert!(check_replaceable_dir(&theirs, true).is_err());
        assert!(check_replaceable_dir(&theirs, false).is_err());
        let old = dir.path().join("old");
        std::fs::create_dir_all(old.join("rssp")).unwrap();
        std::fs::write(old.join("comparison.csv"), "x").unwrap();
        std::fs::write(old.join("rssp/summary.json"), "x").unwrap();
        check_replaceable_dir(&old, true).unwrap();
        std::fs::write(theirs.join(MADE_BY), made_by_json()).unwrap();
        check_replaceable_dir(&theirs, true).unwrap();
        check_replaceable_dir(&dir.path().join("none"), false).unwrap();
    }

    #[test]
    fn a_locked_directory_names_its_holder_and_is_free_after() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path(), "results.csv", "sweep").unwrap();
        let e = DirLock::acquire(dir.path(), "results.csv", "merge")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("pid {}, sweep", std::process::id())),
            "{e}"
        );
        // Another output of the same directory (a shard) is free.
        DirLock::acquire(dir.path(), "results.shard-0-of-2.csv", "sweep").unwrap();
        drop(lock);
        assert!(!dir.path().join(".results.csv.lock").exists());
        DirLock::acquire(dir.path(), "results.csv", "merge").unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Pids above the kernel's limit (2^22) are never running.
        let dead = dir.path().join(".run.tmp-4294967294");
        std::fs::create_dir(&dead).unwrap();
        let mine = dir.path().join(temp_name("run"));
        std::fs::create_dir(&mine).unwrap();
        let other = dir.path().join(".other.tmp-4294967294");
        std::fs::write(&other, "x").unwrap();
        remove_stale_temps(dir.path(), Some("run"));
        assert!(!dead.exists() || !Path::new("/proc/self").exists());
        assert!(mine.exists() && other.exists());
        remove_stale_temps(dir.path(), None);
        assert!(!other.exists() || !Path::new("/proc/self").exists());
    }
}
