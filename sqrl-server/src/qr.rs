//! QR codes of SQRL URLs: SVG for the login page, PNG for `/png.sqrl`.
//!
//! Every page load draws a fresh code (every nut is new), so drawing is on the
//! login path. The `qrcode` crate encodes the data and adds the error
//! correction; the rest is made here from what the crate draws once per
//! version and is then kept, because the crate places the codewords module by
//! module on a cloned canvas and then masks and scores each of the eight
//! candidate masks (ISO/IEC 18004 7.8.3: the one with the lowest penalty
//! score wins) on another clone through per-module closures, which was most of
//! the cost of a login page.
//!
//! Kept per version: where each bit of the codewords goes (found by drawing
//! numbered bits with the crate, see `bit_modules`), and what each mask makes
//! of an empty symbol (the mask's bits over the data area, the function
//! patterns, and the format information that names the mask). A candidate is
//! then the XOR of two bit grids, one row per machine word: the data's dark
//! modules, placed bit by bit from the kept positions, and the masked empty
//! symbol. The penalty rules run on whole rows and columns at a time. The
//! result is the same symbol the crate would produce (tested below against
//! the crate on random URLs). Symbols wider than a word (version 12 and up,
//! far longer than any nut URL) take the plain per-module path. The SVG is one
//! path of horizontal runs, read off the rows a word at a time.

use std::sync::OnceLock;

use qrcode::canvas::{Canvas, MaskPattern, Module};
use qrcode::{Color, EcLevel, Version, bits, ec};

/// Quiet zone around the code, in modules (the QR standard asks for 4).
const QUIET_ZONE: usize = 4;

/// Pixels per module in PNG output.
const PNG_SCALE: usize = 6;

/// Smallest side of the SVG, in CSS pixels.
const SVG_MIN_SIDE: usize = 240;

/// Level M survives a smudged screen and keeps the code small enough to scan
/// from a laptop display.
const EC_LEVEL: EcLevel = EcLevel::M;

/// The mask patterns in the order the `qrcode` crate tries them (ties go to
/// the first, as there).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in a QR code.
    #[error("QR encoding: {0}")]
    Encode(#[from] qrcode::types::QrError),
    /// The PNG encoder failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
}

/// A QR symbol: `width × width` modules, `true` (or a set bit) for dark.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Symbol {
    width: usize,
    modules: Modules,
}

/// The modules of a [`Symbol`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Modules {
    /// One [`Row`] per row, bit `x` for module `x` (symbols up to a row wide).
    Rows(Vec<Row>),
    /// Row by row, one `bool` per module (wider symbols).
    Grid(Vec<bool>),
}

impl Symbol {
    /// Encodes `data` at [`EC_LEVEL`] with the lowest-penalty mask.
    fn encode(data: &str) -> Result<Self, QrError> {
        let bits = bits::encode_auto(data.as_bytes(), EC_LEVEL)?;
        let version = bits.version();
        let (data, ec) = ec::construct_codewords(&bits.into_bytes(), version, EC_LEVEL)?;
        match Layout::of(version, data.len(), ec.len()) {
            Some(layout) => Ok(layout.best_symbol(&data, &ec)),
            None => {
                let mut canvas = Canvas::new(version, EC_LEVEL);
                canvas.draw_all_functional_patterns();
                canvas.draw_data(&data, &ec);
                Self::best_by_modules(&canvas, version)
            }
        }
    }

    /// The lowest-penalty mask, module by module (for symbols wider than
    /// a [`Row`]).
    fn best_by_modules(canvas: &Canvas, version: Version) -> Result<Self, QrError> {
        let width =
            usize::try_from(version.width()).map_err(|_| qrcode::types::QrError::InvalidVersion)?;
        let mut best: Option<(u32, Vec<bool>)> = None;
        for mask in MASKS {
            let mut masked = canvas.clone();
            masked.apply_mask(mask);
            let dark: Vec<bool> = masked
                .into_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            let score = grid_penalty(&dark, width);
            if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
                best = Some((score, dark));
            }
        }
        best.map(|(_, dark)| Symbol {
            width,
            modules: Modules::Grid(dark),
        })
        .ok_or(QrError::Encode(qrcode::types::QrError::InvalidVersion))
    }

    /// Calls `run(start, length)` for each horizontal run of dark modules
    /// in row `y`, left to right.
    fn dark_runs(&self, y: usize, mut run: impl FnMut(usize, usize)) {
        match &self.modules {
            Modules::Rows(rows) => {
                let mut rest = rows.get(y).copied().unwrap_or(0);
                while rest != 0 {
                    let start = rest.trailing_zeros() as usize;
                    let length = (!(rest >> start)).trailing_zeros() as usize;
                    run(start, length);
                    rest &= Row::MAX.checked_shl((start + length) as u32).unwrap_or(0);
                }
            }
            Modules::Grid(dark) => {
                let Some(row) = dark.chunks_exact(self.width).nth(y) else {
                    return;
                };
                let mut x = 0;
                for same in row.chunk_by(|a, b| a == b) {
                    if same[0] {
                        run(x, same.len());
                    }
                    x += same.len();
                }
            }
        }
    }

    /// Every module, row by row, `true` for dark.
    #[cfg(test)]
    fn grid(&self) -> Vec<bool> {
        let mut dark = vec![false; self.width * self.width];
        for y in 0..self.width {
            self.dark_runs(y, |start, length| {
                dark[y * self.width + start..][..length].fill(true);
            });
        }
        dark
    }
}

/// The penalty score of ISO/IEC 18004 7.8.3.1 of a `width`-wide grid,
/// computed as the `qrcode` crate does (`Canvas::compute_total_penalty_scores`),
/// so the same mask wins.
fn grid_penalty(dark: &[bool], width: usize) -> u32 {
    let w = width;
    let rows: Vec<&[bool]> = dark.chunks_exact(w).collect();
    let mut columns = vec![false; dark.len()];
    for (y, row) in rows.iter().enumerate() {
        for (x, dark) in row.iter().enumerate() {
            columns[x * w + y] = *dark;
        }
    }
    let mut score = 0;
    for lines in [dark.chunks_exact(w), columns.chunks_exact(w)] {
        for line in lines {
            score += runs_penalty(line) + finder_penalty(line);
        }
        // The three finder patterns match three times each, in each
        // direction; the crate does not count those.
        score = score.saturating_sub(360);
    }
    // Rule 2: each 2x2 block of one colour (overlaps counted) scores 3.
    for pair in rows.windows(2) {
        let blocks = pair[0].windows(2).zip(pair[1].windows(2));
        score += 3 * blocks
            .filter(|(top, bottom)| top[0] == top[1] && top == bottom)
            .count() as u32;
    }
    // Rule 4: the distance of the dark share from 50%, in 0.5% steps.
    let dark = dark.iter().filter(|d| **d).count();
    let ratio = dark * 200 / (w * w).max(1);
    score + ratio.abs_diff(100) as u32
}

/// One row (or column) of a symbol: bit `x` is module `x`, set for dark.
type Row = u64;

/// The widest symbol a [`Row`] holds (version 11 is 61 modules wide).
const ROW_BITS: usize = Row::BITS as usize;

/// What every symbol of one version shares, worked out once with the
/// `qrcode` crate and kept: where each bit of the codewords goes, and for
/// each mask, the rows and columns of an empty symbol masked with it (see
/// the module's documentation).
struct Layout {
    width: usize,
    /// Data and error-correction codewords of a symbol of this version.
    data_len: usize,
    ec_len: usize,
    /// The module (x, y) of each bit of the codewords, data then error
    /// correction, each byte from its high bit: the order the crate's
    /// `Canvas::draw_data` places them in.
    bit_modules: Vec<(u8, u8)>,
    masked_rows: [Vec<Row>; 8],
    masked_columns: [Vec<Row>; 8],
}

/// A [`Layout`] for each of the 40 versions, made on first use.
static LAYOUTS: [OnceLock<Option<Layout>>; 40] = [const { OnceLock::new() }; 40];

impl Layout {
    /// The layout of `version` for `data_len` data and `ec_len`
    /// error-correction codewords, or `None` for a symbol wider than a
    /// [`Row`] (or codewords of other lengths than the layout was made for,
    /// which the crate never gives one version at one level).
    fn of(version: Version, data_len: usize, ec_len: usize) -> Option<&'static Self> {
        let Version::Normal(number) = version else {
            return None;
        };
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        LAYOUTS
            .get(index)?
            .get_or_init(|| Self::draw(version, data_len, ec_len))
            .as_ref()
            .filter(|layout| layout.data_len == data_len && layout.ec_len == ec_len)
    }

    fn draw(version: Version, data_len: usize, ec_len: usize) -> Option<Self> {
        let width = usize::try_from(version.width()).ok()?;
        if width > ROW_BITS || width > usize::from(u8::MAX) {
            return None;
        }
        let mut template = Canvas::new(version, EC_LEVEL);
        template.draw_all_functional_patterns();
        let bit_modules = bit_modules(&template, width, data_len, ec_len)?;
        let mut masked_rows: [Vec<Row>; 8] = Default::default();
        let mut masked_columns: [Vec<Row>; 8] = Default::default();
        for (index, mask) in MASKS.into_iter().enumerate() {
            let mut empty = template.clone();
            // Each module of the data area is still `Empty`, which the mask
            // turns dark exactly where it would invert a light data module.
            empty.apply_mask(mask);
            let rows = rows_of(&empty, width, |module| module.is_dark());
            masked_columns[index] = transpose(&rows, width);
            masked_rows[index] = rows;
        }
        Some(Self {
            width,
            data_len,
            ec_len,
            bit_modules,
            masked_rows,
            masked_columns,
        })
    }

    /// The symbol of `data` and `ec` (codewords of this layout's lengths)
    /// under the mask with the lowest penalty; ties go to the first mask, as
    /// in the crate.
    fn best_symbol(&self, data: &[u8], ec: &[u8]) -> Symbol {
        let width = self.width;
        let mut data_rows: Vec<Row> = vec![0; width];
        let mut modules = self.bit_modules.iter();
        for byte in data.iter().chain(ec) {
            for bit in (0..8).rev() {
                let Some(&(x, y)) = modules.next() else {
                    break;
                };
                if byte >> bit & 1 == 1 {
                    data_rows[usize::from(y)] |= 1 << x;
                }
            }
        }
        let data_columns = transpose(&data_rows, width);
        let mut rows = vec![0; width];
        let mut columns = vec![0; width];
        let mut best: Option<(u32, Vec<Row>)> = None;
        for mask in 0..MASKS.len() {
            xor_into(&mut rows, &data_rows, &self.masked_rows[mask]);
            xor_into(&mut columns, &data_columns, &self.masked_columns[mask]);
            let score = row_penalty(&rows, &columns, width);
            if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
                best = Some((score, rows.clone()));
            }
        }
        Symbol {
            width,
            modules: Modules::Rows(best.map(|(_, rows)| rows).unwrap_or_default()),
        }
    }
}

/// Where the crate's `Canvas::draw_data` puts each bit of `data_len` data
/// and `ec_len` error-correction codewords on `template` (the function
/// patterns drawn), found by drawing with the crate: every bit is numbered
/// (from 1), and drawing `b` sets each bit whose number has bit `b` set, so
/// after one drawing per bit of the largest number each data module holds
/// the number of the bit placed on it. `None` if the drawings do not give
/// each bit exactly one module.
fn bit_modules(
    template: &Canvas,
    width: usize,
    data_len: usize,
    ec_len: usize,
) -> Option<Vec<(u8, u8)>> {
    let bits = (data_len + ec_len) * 8;
    let mut numbers = vec![0usize; width * width];
    for b in 0..usize::BITS - bits.leading_zeros() {
        let stream: Vec<u8> = (0..data_len + ec_len)
            .map(|byte| {
                (0..8).fold(0u8, |acc, bit| {
                    let number = byte * 8 + bit + 1;
                    acc | u8::from(number >> b & 1 == 1) << (7 - bit)
                })
            })
            .collect();
        let (data, ec) = stream.split_at(data_len);
        let mut canvas = template.clone();
        canvas.draw_data(data, ec);
        let rows = rows_of(&canvas, width, |module| {
            module == Module::Unmasked(Color::Dark)
        });
        for (y, row) in rows.iter().enumerate() {
            for x in 0..width {
                if row >> x & 1 == 1 {
                    numbers[y * width + x] |= 1 << b;
                }
            }
        }
    }
    let mut modules = vec![None; bits];
    for (index, number) in numbers.into_iter().enumerate() {
        if number == 0 {
            continue;
        }
        let place = modules.get_mut(number - 1)?;
        if place.is_some() {
            return None;
        }
        *place = Some((
            u8::try_from(index % width).ok()?,
            u8::try_from(index / width).ok()?,
        ));
    }
    modules.into_iter().collect()
}

/// The rows of `canvas`, with the modules `dark` picks set.
fn rows_of(canvas: &Canvas, width: usize, dark: impl Fn(Module) -> bool) -> Vec<Row> {
    let coordinate = |n: usize| i16::try_from(n).unwrap_or(i16::MAX);
    (0..width)
        .map(|y| {
            (0..width)
                .filter(|x| dark(canvas.get(coordinate(*x), coordinate(y))))
                .fold(0, |row, x| row | 1 << x)
        })
        .collect()
}

/// The columns of a square of `width` rows, as rows.
fn transpose(rows: &[Row], width: usize) -> Vec<Row> {
    let mut columns = vec![0; width];
    for (y, row) in rows.iter().enumerate() {
        let mut rest = *row;
        while rest != 0 {
            let x = rest.trailing_zeros() as usize;
            columns[x] |= 1 << y;
            rest &= rest - 1;
        }
    }
    columns
}

fn xor_into(out: &mut [Row], a: &[Row], b: &[Row]) {
    for ((out, a), b) in out.iter_mut().zip(a).zip(b) {
        *out = a ^ b;
    }
}

/// [`Symbol::penalty`] on rows and columns of bits: the same score.
fn row_penalty(rows: &[Row], columns: &[Row], width: usize) -> u32 {
    let mut score = 0;
    for lines in [rows, columns] {
        for line in lines {
            score += line_runs_penalty(*line, width) + line_finder_penalty(*line, width);
        }
        // The finder patterns, as in `Symbol::penalty`.
        score = score.saturating_sub(360);
    }
    // Rule 2: 2x2 blocks of one colour; `pair` has a bit where the module
    // and the one below it agree, `along` where it and its right neighbour do.
    let inner = low_bits(width - 1);
    for pair in rows.windows(2) {
        let same_below = !(pair[0] ^ pair[1]);
        let same_right = !(pair[0] ^ (pair[0] >> 1));
        let blocks = same_below & (same_below >> 1) & same_right & inner;
        score += 3 * blocks.count_ones();
    }
    // Rule 4.
    let dark: u32 = rows.iter().map(|row| row.count_ones()).sum();
    let ratio = dark as usize * 200 / (width * width).max(1);
    score + ratio.abs_diff(100) as u32
}

/// A row with the `n` lowest bits set.
fn low_bits(n: usize) -> Row {
    if n >= ROW_BITS {
        Row::MAX
    } else {
        (1 << n) - 1
    }
}

/// [`runs_penalty`] of one line of `width` bits. A run of `len >= 5`
/// scores `len - 2`, which is its `len - 4` windows of five equal modules,
/// plus 2 for the run itself (counted where it starts).
fn line_runs_penalty(line: Row, width: usize) -> u32 {
    if width < 5 {
        return 0;
    }
    // Bit j: modules j and j+1 are of one colour.
    let same_next = !(line ^ (line >> 1));
    // Bit j: modules j..=j+4 are of one colour.
    let five =
        same_next & (same_next >> 1) & (same_next >> 2) & (same_next >> 3) & low_bits(width - 4);
    // ... and module j-1 is not (or j is the first).
    let starts = five & !(same_next << 1);
    five.count_ones() + 2 * starts.count_ones()
}

/// [`finder_penalty`] of one line of `width` bits.
fn line_finder_penalty(line: Row, width: usize) -> u32 {
    if width < 7 {
        return 0;
    }
    // Bit j: modules j..j+7 are dark-light-dark-dark-dark-light-dark.
    let pattern = line
        & !(line >> 1)
        & (line >> 2)
        & (line >> 3)
        & (line >> 4)
        & !(line >> 5)
        & (line >> 6)
        & low_bits(width - 6);
    // Bit j: a dark module among the four before j, or the four after j+6.
    let dark_before = (line << 1) | (line << 2) | (line << 3) | (line << 4);
    let dark_after = (line >> 7) | (line >> 8) | (line >> 9) | (line >> 10);
    40 * (pattern & !(dark_before & dark_after)).count_ones()
}

/// Rule 1: each run of five or more same-coloured modules in a line scores
/// its length minus two.
fn runs_penalty(line: &[bool]) -> u32 {
    line.chunk_by(|a, b| a == b)
        .filter(|run| run.len() >= 5)
        .map(|run| run.len() as u32 - 2)
        .sum()
}

/// Rule 3: each dark-light-dark-dark-dark-light-dark run (1:1:3:1:1) without
/// a dark module within four on *both* sides scores 40.
fn finder_penalty(line: &[bool]) -> u32 {
    const PATTERN: [bool; 7] = [true, false, true, true, true, false, true];
    let mut score = 0;
    for (j, window) in line.windows(7).enumerate() {
        if window != PATTERN {
            continue;
        }
        let before = &line[j.saturating_sub(4)..j];
        let after = &line[j + 7..(j + 11).min(line.len())];
        if !before.contains(&true) || !after.contains(&true) {
            score += 40;
        }
    }
    score
}

/// The QR code for `data` as an `<svg>` element, for a page to show
/// inline: one path of horizontal runs of dark modules on a white square,
/// with the quiet zone.
pub fn svg(data: &str) -> Result<String, QrError> {
    let symbol = Symbol::encode(data)?;
    let side = symbol.width + 2 * QUIET_ZONE;
    let pixels = side * SVG_MIN_SIDE.div_ceil(side);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{pixels}\" \
         height=\"{pixels}\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\""
    );
    // About 16 bytes a run, a run every third module or so.
    out.reserve(symbol.width * symbol.width * 6 + 16);
    let mut x_digits = itoa::Buffer::new();
    let mut run_digits = itoa::Buffer::new();
    let mut y_digits = itoa::Buffer::new();
    for y in 0..symbol.width {
        let row = y_digits.format(y + QUIET_ZONE);
        symbol.dark_runs(y, |start, length| {
            // `M{x} {y}h{run}v1h-{run}z`, without the formatting machinery
            // (which was half the cost of a code).
            let run = run_digits.format(length);
            out.push('M');
            out.push_str(x_digits.format(start + QUIET_ZONE));
            out.push(' ');
            out.push_str(row);
            out.push('h');
            out.push_str(run);
            out.push_str("v1h-");
            out.push_str(run);
            out.push('z');
        });
    }
    out.push_str("\"/></svg>");
    Ok(out)
}

/// A greyscale PNG of the QR code for `data`.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let symbol = Symbol::encode(data)?;
    let side = (symbol.width + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![0xffu8; side * side];
    for y in 0..symbol.width {
        let top = (y + QUIET_ZONE) * PNG_SCALE;
        for row in pixels.chunks_exact_mut(side).skip(top).take(PNG_SCALE) {
            symbol.dark_runs(y, |start, length| {
                let left = (start + QUIET_ZONE) * PNG_SCALE;
                if let Some(span) = row.get_mut(left..left + length * PNG_SCALE) {
                    span.fill(0);
                }
            });
        }
    }
    let side = u32::try_from(side).map_err(|_| qrcode::types::QrError::DataTooLong)?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use qrcode::QrCode;
    use rand_core::RngCore as _;

    fn urls() -> Vec<String> {
        let mut rng = rand_core::OsRng;
        (0..150)
            .map(|i| {
                let mut nut = [0u8; 16];
                rng.fill_bytes(&mut nut);
                let nut = sqrl_core::base64url::encode(nut);
                // Lengths around what the service issues (QR and link forms).
                match i % 3 {
                    0 => format!("qrl://127.0.0.1:8080/cli.sqrl?nut={nut}"),
                    1 => format!("sqrl://login.example.com/cli.sqrl?nut={nut}"),
                    _ => format!(
                        "sqrl://login.example.com/cli.sqrl?nut={nut}&can=aHR0cHM6Ly9sb2dpbi5leGFtcGxlLmNvbS8"
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn same_symbol_as_the_qrcode_crate() {
        // Past a row's width too (the per-module path), and across versions.
        let long = (1..12).map(|n| format!("sqrl://login.example.com/{}", "x".repeat(n * 30)));
        for url in urls().into_iter().chain(long) {
            let ours = Symbol::encode(&url).unwrap();
            let theirs = QrCode::with_error_correction_level(url.as_bytes(), EC_LEVEL).unwrap();
            let theirs: Vec<bool> = theirs
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            assert_eq!(ours.grid(), theirs, "{url}");
        }
    }

    #[test]
    fn row_penalty_scores_as_the_module_penalty() {
        let mut rng = rand_core::OsRng;
        for width in [21, 25, 33, 41, 45, 57, 61, 64] {
            for density in [2, 8, 16] {
                // Random grids, some sparse (long light runs), some dense.
                let dark: Vec<bool> = (0..width * width)
                    .map(|_| rng.next_u32() % 16 < density)
                    .collect();
                let rows: Vec<Row> = dark
                    .chunks_exact(width)
                    .map(|row| {
                        row.iter()
                            .enumerate()
                            .fold(0, |bits, (x, d)| bits | Row::from(*d) << x)
                    })
                    .collect();
                let columns = transpose(&rows, width);
                assert_eq!(
                    row_penalty(&rows, &columns, width),
                    grid_penalty(&dark, width),
                    "width {width}, density {density}"
                );
            }
        }
    }

    /// Reads the SVG's runs back into a grid.
    fn svg_modules(svg: &str, width: usize) -> Vec<bool> {
        let path = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; width * width];
        for run in path.split('M').filter(|r| !r.is_empty()) {
            let (x, rest) = run.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let len: usize = rest.split_once('v').unwrap().0.parse().unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            for i in 0..len {
                dark[(y - QUIET_ZONE) * width + x - QUIET_ZONE + i] = true;
            }
        }
        dark
    }

    #[test]
    fn svg_and_png_show_the_symbol() {
        let url = "qrl://127.0.0.1:8080/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA";
        let symbol = Symbol::encode(url).unwrap();
        let svg = svg(url).unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        let side = symbol.width + 2 * QUIET_ZONE;
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        assert_eq!(svg_modules(&svg, symbol.width), symbol.grid());

        let png = png(url).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize, side * PNG_SCALE);
        // The centre pixel of every module is the module's colour.
        let stride = info.width as usize;
        for y in 0..symbol.width {
            for x in 0..symbol.width {
                let px = (x + QUIET_ZONE) * PNG_SCALE + PNG_SCALE / 2;
                let py = (y + QUIET_ZONE) * PNG_SCALE + PNG_SCALE / 2;
                assert_eq!(
                    pixels[py * stride + px] == 0,
                    symbol.grid()[y * symbol.width + x]
                );
            }
        }
    }
}
