//! Where identities live on disk.
//!
//! ```text
//! <config dir>/            0700  (--config-dir, $SQRL_HOME, or the platform config dir + /sqrl)
//!   default                name of the default identity, one line
//!   identities/            0700
//!     <name>.sqrl          0600  S4 binary (SPEC 5), exactly the bytes imported or written
//! ```
//!
//! New files are created with `create_new` so an existing identity is never
//! overwritten by accident; deliberate rewrites (password change, rekey) go through
//! a temporary file in the same directory, an atomic rename and a directory sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name extension of stored identities.
const IDENTITY_EXTENSION: &str = "sqrl";
/// File naming the default identity.
const DEFAULT_FILE: &str = "default";
/// Sub-directory holding the identity files.
const IDENTITIES_DIR: &str = "identities";
/// Longest identity name accepted.
const MAX_NAME_LEN: usize = 64;

/// The configuration directory and the identities in it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (without creating) the store at `root`, or at the platform default.
    pub fn open(root: Option<PathBuf>) -> Result<Self> {
        let root = match root {
            Some(root) => root,
            None => dirs::config_dir().ok_or(Error::NoConfigDir)?.join("sqrl"),
        };
        Ok(Self { root })
    }

    /// The configuration directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn identities_dir(&self) -> PathBuf {
        self.root.join(IDENTITIES_DIR)
    }

    /// Creates the directories (mode 0700) if they do not exist yet.
    pub fn ensure_dirs(&self) -> Result<()> {
        for dir in [self.root.clone(), self.identities_dir()] {
            create_private_dir(&dir)?;
        }
        Ok(())
    }

    /// The path of a named identity (which need not exist).
    pub fn identity_path(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self
            .identities_dir()
            .join(format!("{name}.{IDENTITY_EXTENSION}")))
    }

    /// Whether a named identity exists.
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.identity_path(name)?.is_file())
    }

    /// The names of all stored identities, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let dir = self.identities_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::ReadFile { path: dir, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::ReadFile {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(IDENTITY_EXTENSION) {
                continue;
            }
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                && validate_name(stem).is_ok()
            {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The default identity's name, if one is set and still exists.
    pub fn default_name(&self) -> Result<Option<String>> {
        let path = self.root.join(DEFAULT_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let name = text.trim().to_owned();
                if validate_name(&name).is_ok() && self.exists(&name)? {
                    Ok(Some(name))
                } else {
                    Ok(None)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::ReadFile { path, source }),
        }
    }

    /// Makes `name` the default identity.
    pub fn set_default(&self, name: &str) -> Result<()> {
        if !self.exists(name)? {
            return Err(Error::NoSuchIdentity(name.to_owned()));
        }
        self.ensure_dirs()?;
        replace_file(
            &self.root.join(DEFAULT_FILE),
            format!("{name}\n").as_bytes(),
        )
    }

    /// Resolves the identity to use: the one named, else the default, else the only one.
    pub fn resolve(&self, name: Option<&str>) -> Result<String> {
        if let Some(name) = name {
            if !self.exists(name)? {
                return Err(Error::NoSuchIdentity(name.to_owned()));
            }
            return Ok(name.to_owned());
        }
        if let Some(name) = self.default_name()? {
            return Ok(name);
        }
        match self.list()?.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(Error::NoIdentity),
        }
    }

    /// Reads a stored identity's bytes.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.identity_path(name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NoSuchIdentity(name.to_owned()))
            }
            Err(source) => Err(Error::ReadFile { path, source }),
        }
    }

    /// Stores a new identity; fails if one of that name exists. The first identity
    /// stored becomes the default.
    pub fn create(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.identity_path(name)?;
        self.ensure_dirs()?;
        if path.exists() {
            return Err(Error::IdentityExists(name.to_owned()));
        }
        write_new_file(&path, bytes)?;
        if self.default_name()?.is_none() {
            self.set_default(name)?;
        }
        Ok(path)
    }

    /// Replaces a stored identity's bytes atomically (password change, rekey).
    pub fn replace(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.identity_path(name)?;
        if !path.is_file() {
            return Err(Error::NoSuchIdentity(name.to_owned()));
        }
        replace_file(&path, bytes)?;
        Ok(path)
    }
}

/// Checks that a name is safe to use as a file name on every platform.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::WriteFile {
        path: dir.to_owned(),
        source,
    })
}

/// Opens a file that must not exist yet, readable by its owner only.
pub fn create_new_private(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            Error::FileExists {
                path: path.to_owned(),
            }
        } else {
            Error::WriteFile {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// Writes a new owner-only file; never replaces an existing one.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = create_new_private(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(source) = result {
        // Do not leave a truncated identity behind.
        let _ = fs::remove_file(path);
        return Err(Error::WriteFile {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

/// Replaces a file atomically: a temporary sibling (owner-only from its
/// creation) is written and synced, renamed over `path`, and the directory is
/// synced so the rename itself survives a crash. Until the rename, readers see
/// the old content; on any error the temporary file is removed.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let write_error = |source| Error::WriteFile {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("identity");
    // Hidden, so `list` and a person browsing the directory skip a leftover.
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut temp = builder.tempfile_in(dir).map_err(write_error)?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(write_error)?;
    // On failure the error owns the temporary file and removes it when dropped.
    temp.persist(path).map_err(|e| write_error(e.error))?;
    sync_dir(dir).map_err(write_error)
}

/// Makes a rename in `dir` durable: on Unix the directory entry is only on
/// disk once the directory itself is synced.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_safe() {
        for good in ["work", "a", "alice.2", "x_y-z"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "ä", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_never_overwrites_and_sets_first_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().join("cfg"))).unwrap();
        assert!(matches!(store.resolve(None), Err(Error::NoIdentity)));
        store.create("one", b"first").unwrap();
        assert_eq!(store.default_name().unwrap().as_deref(), Some("one"));
        assert!(matches!(
            store.create("one", b"second"),
            Err(Error::IdentityExists(_))
        ));
        assert_eq!(store.read("one").unwrap(), b"first");
        store.create("two", b"2").unwrap();
        assert_eq!(store.list().unwrap(), vec!["one", "two"]);
        assert_eq!(store.resolve(None).unwrap(), "one");
        store.set_default("two").unwrap();
        assert_eq!(store.resolve(None).unwrap(), "two");
        store.replace("one", b"changed").unwrap();
        assert_eq!(store.read("one").unwrap(), b"changed");
        assert!(matches!(
            store.resolve(Some("three")),
            Err(Error::NoSuchIdentity(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn identity_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().join("cfg"))).unwrap();
        let path = store.create("me", b"x").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        store.replace("me", b"y").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(store.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_replace_leaves_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.sqrl");
        fs::write(&path, b"old").unwrap();
        replace_file(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            entries(dir.path()),
            ["me.sqrl"],
            "a temporary file was left"
        );
    }

    #[test]
    fn a_failed_replace_keeps_the_old_content_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A rename of a file over a non-empty directory fails after the
        // temporary file was written: the step that must not leave it behind.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"old").unwrap();
        let error = replace_file(&path, b"new").unwrap_err();
        assert!(
            matches!(&error, Error::WriteFile { path: p, .. } if *p == path),
            "{error:?}"
        );
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["taken"], "a temporary file was left");
    }

    #[cfg(unix)]
    #[test]
    fn a_replacement_is_owner_only_even_over_a_readable_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.sqrl");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        replace_file(&path, b"new").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
