//! The vector file formats the runner knows, how each is recognised, and how each
//! row is checked against sqrl-core.

mod crypto;
mod encoding;
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
}

/// How rows are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The first line that is not a `#` comment is a CSV header row.
    CsvWithHeader,
    /// Every non-comment, non-blank line is a row.
    Rows,
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
            ("# sqrl_url | site_key_string | post_url", Format::LibsqrlUri),
            ("# sqrl_url | expected site key string", Format::GrcUrl),
        ];
        SIGNATURES
            .iter()
            .find(|(signature, _)| first.starts_with(signature))
            .map(|(_, format)| *format)
    }

    fn layout(self) -> Layout {
        match self {
            Format::SqrldevEnScrypt
            | Format::EnHash
            | Format::Identity
            | Format::IdentityLock
            | Format::IndexedSecret => Layout::CsvWithHeader,
            Format::LibsqrlEnScrypt | Format::Base64Url | Format::LibsqrlUri | Format::GrcUrl => {
                Layout::Rows
            }
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
        }
    }

    /// Checks every row of a file, returning `(line number, outcome)` per row.
    /// Rows are spread over the machine's cores: EnScrypt rows are expensive.
    pub fn check_rows(self, text: &str) -> Vec<(usize, Result<(), String>)> {
        let mut rows: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
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
