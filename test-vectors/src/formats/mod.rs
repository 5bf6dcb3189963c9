//! The vector file formats the runner knows, how each is recognised, and how each
//! row is checked against sqrl-core.

mod crypto;
mod encoding;
mod project;
mod protocol;
mod storage;
mod url;

/// A vector file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// sqrldev `Password,Salt,Iterations,...` (literal-text password and salt, logN 9).
    SqrldevEnScrypt,
    /// libsqrl `password(ASCII),salt(hex),iterations,logN,result(hex)`.
    LibsqrlEnScrypt,
    /// sqrldev EnHash, base64url in and out.
    EnHash,
    /// sqrldev identity: IUK -> ILK, IMK; IMK + site + Alt-ID -> IDK.
    Identity,
    /// sqrldev identity lock: IUK, RLK -> ILK, SUK, DHKA, VUK.
    IdentityLock,
    /// sqrldev indexed secrets.
    IndexedSecret,
    /// libsqrl base64url `hex,text`.
    Base64Url,
    /// libsqrl `sqrl_url | site_key_string | post_url | notes`.
    LibsqrlUri,
    /// GRC `sqrl_url | site key string | rule`.
    GrcUrl,
    /// GRC TIF bits and example values.
    Tif,
    /// sqrldev base56 digit strings and check characters.
    Base56Digits,
    /// sqrldev full textual-identity layouts.
    Base56Full,
    /// libsqrl textual identity (`text = ...` with decoded length and prefix).
    Base56Identity,
    /// `label | hex` S4 files that must round-trip byte for byte.
    S4RoundTrip,
    /// A pre-v1 identity with published secrets: decrypts, yet is rejected.
    LegacyIdentity,
    /// A bare S4 file (`sqrldata` or `SQRLDATA`).
    S4File,
    /// Project: `urs` signatures.
    Urs,
    /// Project: indexed secrets of a previous identity.
    PreviousIndexedSecret,
    /// Project: an identity with previous keys under a known password.
    Type3Identity,
    /// Project: a complete recorded exchange.
    Exchange,
}

/// How rows are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The first line that is not a `#` comment is a CSV header row.
    CsvWithHeader,
    /// Every non-comment, non-blank line is a row.
    Rows,
    /// The whole file is one vector.
    WholeFile,
}

impl Format {
    /// Recognises a format from the file's first descriptive line (the first line
    /// that is neither blank nor the `# Source:` line).
    pub fn detect(text: &str) -> Option<Self> {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("# Source"))?;
        const SIGNATURES: &[(&str, Format)] = &[
            ("Password,Salt,Iterations", Format::SqrldevEnScrypt),
            ("# password(ASCII),salt(hex", Format::LibsqrlEnScrypt),
            ("Input(base64_url),EnHashedOutput", Format::EnHash),
            ("IUK(base64_url),ILK(base64_url),IMK", Format::Identity),
            ("IUK(hex),ILK(hex),RLV(hex)", Format::IdentityLock),
            ("IMK(base64_url),Domain,SIN,INS", Format::IndexedSecret),
            ("# input(hex),output", Format::Base64Url),
            (
                "# sqrl_url | site_key_string | post_url",
                Format::LibsqrlUri,
            ),
            ("# sqrl_url | expected site key string", Format::GrcUrl),
            ("# bit | name", Format::Tif),
            ("Input(hex),LineNum,Output,CheckChar", Format::Base56Digits),
            (
                "Input(base64_url),Input(hex),Base56EncodedOutput",
                Format::Base56Full,
            ),
            ("text = ", Format::Base56Identity),
            ("# label | hex", Format::S4RoundTrip),
            ("# WARNING: pre-v1 libsqrl format", Format::LegacyIdentity),
            ("IUK(hex),RLK(hex),SUK(hex),VUK(hex),Message", Format::Urs),
            (
                "PIUK(base64_url),Domain,SIN,PIDK",
                Format::PreviousIndexedSecret,
            ),
            (
                "# identity with previous keys (type 3)",
                Format::Type3Identity,
            ),
            ("# exchange:", Format::Exchange),
        ];
        SIGNATURES
            .iter()
            .find(|(signature, _)| first.starts_with(signature))
            .map(|(_, format)| *format)
    }

    /// Recognises a format from a file's bytes: S4 files by their header, text
    /// files by their first descriptive line.
    pub fn detect_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"sqrldata") {
            return Some(Format::S4File);
        }
        Self::detect(std::str::from_utf8(bytes).ok()?)
    }

    fn layout(self) -> Layout {
        match self {
            Format::Base56Identity
            | Format::LegacyIdentity
            | Format::S4File
            | Format::Type3Identity
            | Format::Exchange => Layout::WholeFile,
            Format::Base56Digits
            | Format::Base56Full
            | Format::Urs
            | Format::PreviousIndexedSecret => Layout::CsvWithHeader,
            Format::S4RoundTrip => Layout::Rows,
            Format::SqrldevEnScrypt
            | Format::EnHash
            | Format::Identity
            | Format::IdentityLock
            | Format::IndexedSecret => Layout::CsvWithHeader,
            Format::LibsqrlEnScrypt
            | Format::Base64Url
            | Format::LibsqrlUri
            | Format::GrcUrl
            | Format::Tif => Layout::Rows,
        }
    }

    fn check_row(self, row: &str) -> Result<(), String> {
        match self {
            Format::SqrldevEnScrypt => crypto::sqrldev_enscrypt(row),
            Format::LibsqrlEnScrypt => crypto::libsqrl_enscrypt(row),
            Format::EnHash => crypto::enhash(row),
            Format::Identity => crypto::identity(row),
            Format::IdentityLock => crypto::identity_lock(row),
            Format::IndexedSecret => crypto::indexed_secret(row),
            Format::Base64Url => encoding::base64url(row),
            Format::LibsqrlUri => url::libsqrl_uri(row),
            Format::GrcUrl => url::grc_url(row),
            Format::Tif => protocol::tif(row),
            Format::Base56Digits => storage::base56_digits(row),
            Format::Base56Full => storage::base56_full(row),
            Format::S4RoundTrip => storage::s4_round_trip(row),
            Format::Base56Identity => storage::base56_identity(row),
            Format::LegacyIdentity => storage::legacy_identity(row),
            Format::Urs => project::urs(row),
            Format::PreviousIndexedSecret => project::pins(row),
            Format::Type3Identity => project::type3_identity(row),
            Format::Exchange => project::exchange(row),
            Format::S4File => storage::s4_file(row.as_bytes()),
        }
    }

    /// Checks a file, returning `(line number, outcome)` per row (one row, line 1,
    /// for whole-file vectors).
    pub fn check(self, bytes: &[u8]) -> Vec<(usize, Result<(), String>)> {
        if self == Format::S4File {
            return vec![(1, storage::s4_file(bytes))];
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return vec![(0, Err("not UTF-8 text".into()))];
        };
        if self.layout() == Layout::WholeFile {
            return vec![(1, self.check_row(text))];
        }
        self.check_rows(text)
    }

    /// Checks every row of a text file. Rows are spread over the machine's cores:
    /// EnScrypt rows are expensive.
    fn check_rows(self, text: &str) -> Vec<(usize, Result<(), String>)> {
        let mut rows: Vec<(usize, &str)> = crate::text::row_lines(text).collect();
        if self.layout() == Layout::CsvWithHeader && !rows.is_empty() {
            rows.remove(0);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = rows.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = rows
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(line, row)| (*line, self.check_row(row)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec![(0, Err("checker panicked".to_owned()))])
                })
                .collect()
        })
    }
}
