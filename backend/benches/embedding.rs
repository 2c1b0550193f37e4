//! Throughput of the local embedding model on chunk-sized texts.
//!
//! Usage: cargo bench --profile dev --bench embedding [-- CORPUS_DIR]
//!
//! Reads the `.txt`, `.md` and `.html` files of CORPUS_DIR (default: `shared/corpus` beside the
//! repository), cuts them into pieces of about 1,000 characters at whitespace, drops duplicate
//! pieces, and embeds all pieces at batch sizes 1, 8 and 32. Each batch size calls
//! [`Embedder::embed`] with one batch of texts at a time, as the ingestion pipeline does.
//! EMBEDDING_MODEL_DIR selects the model folder, as in the server. EMBEDDING_BENCH_TEXTS
//! limits the number of pieces for a quick run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use backend::knowledge::embed::{Embedder, EmbeddingSettings, LocalEmbedder};

/// Target piece length in characters, the chunk size of the ingestion pipeline.
const PIECE_CHARS: usize = 1_000;

/// A piece may end this many characters early to end at whitespace.
const PIECE_SLACK: usize = 200;

const BATCH_SIZES: [usize; 3] = [1, 8, 32];

fn main() {
    if let Err(message) = run() {
        eprintln!("embedding bench: error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let corpus = corpus_dir();
    let mut pieces = corpus_pieces(&corpus)?;
    if let Some(limit) = text_limit()? {
        pieces.truncate(limit);
    }
    if pieces.is_empty() {
        return Err(format!(
            "no .txt, .md or .html text found in {}; pass a corpus folder after `--`",
            corpus.display()
        ));
    }
    let chars: usize = pieces.iter().map(|piece| piece.chars().count()).sum();

    let settings = EmbeddingSettings::from_env().map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;

    println!("corpus: {}", corpus.display());
    println!(
        "texts: {} unique pieces, {:.0} characters on average",
        pieces.len(),
        chars as f64 / pieces.len() as f64
    );
    println!("cpu: {} ({} threads)", cpu_model(), num_threads());
    println!(
        "{:>10} {:>8} {:>10} {:>10} {:>12} {:>14}",
        "batch size", "texts", "seconds", "texts/s", "ms per text", "peak RSS MiB"
    );

    for batch_size in BATCH_SIZES {
        let embedder = LocalEmbedder::load(&settings.model_dir, batch_size)
            .map_err(|error| error.to_string())?;
        // The first call pays for one-time allocations; it is not part of the measurement.
        runtime
            .block_on(embedder.embed(&pieces[..batch_size.min(pieces.len())]))
            .map_err(|error| error.to_string())?;

        let started = Instant::now();
        for batch in pieces.chunks(batch_size) {
            let vectors = runtime
                .block_on(embedder.embed(batch))
                .map_err(|error| error.to_string())?;
            assert_eq!(vectors.len(), batch.len());
        }
        let seconds = started.elapsed().as_secs_f64();

        println!(
            "{:>10} {:>8} {:>10.1} {:>10.1} {:>12.1} {:>14}",
            batch_size,
            pieces.len(),
            seconds,
            pieces.len() as f64 / seconds,
            seconds * 1000.0 / pieces.len() as f64,
            peak_rss_mib().map_or("n/a".to_string(), |mib| format!("{mib:.0}")),
        );
    }
    Ok(())
}

/// Returns the first command-line argument that is not a flag (cargo passes `--bench`), else
/// `shared/corpus` beside the repository.
fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::args().skip(1).find(|arg| !arg.starts_with('-')) {
        return PathBuf::from(dir);
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.join("../../shared/corpus")
}

/// Texts of the quick run under `cargo test`, which only checks that the bench still works.
const SMOKE_TEXTS: usize = 4;

/// Reads EMBEDDING_BENCH_TEXTS; without it, `cargo bench` embeds every piece and `cargo test`
/// (which runs bench targets without `--bench`) only [`SMOKE_TEXTS`].
fn text_limit() -> Result<Option<usize>, String> {
    match std::env::var("EMBEDDING_BENCH_TEXTS") {
        Ok(value) => value.trim().parse().map(Some).map_err(|_| {
            format!("invalid EMBEDDING_BENCH_TEXTS={value:?}: use a whole number of texts")
        }),
        Err(_) if std::env::args().any(|arg| arg == "--bench") => Ok(None),
        Err(_) => Ok(Some(SMOKE_TEXTS)),
    }
}

/// Reads the text files of `dir` in name order and returns their unique pieces.
fn corpus_pieces(dir: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        format!(
            "cannot read corpus folder {}: {error}; pass a folder after `--`",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|ext| ext.to_str()),
                Some("txt" | "md" | "html")
            )
        })
        .collect();
    paths.sort();

    let mut seen = HashSet::new();
    let mut pieces = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        for piece in split_pieces(&text) {
            if seen.insert(piece.clone()) {
                pieces.push(piece);
            }
        }
    }
    Ok(pieces)
}

/// Cuts `text` into pieces of at most [`PIECE_CHARS`] characters, each ending at the last
/// whitespace of its final [`PIECE_SLACK`] characters when there is one.
fn split_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + PIECE_CHARS).min(chars.len());
        if end < chars.len() {
            if let Some(offset) = chars[end - PIECE_SLACK..end]
                .iter()
                .rposition(|c| c.is_whitespace())
            {
                end = end - PIECE_SLACK + offset + 1;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        if !piece.trim().is_empty() {
            pieces.push(piece.trim().to_string());
        }
        start = end;
    }
    pieces
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn num_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

/// Returns the peak resident set size of this process (`VmHWM`), on Linux only.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
