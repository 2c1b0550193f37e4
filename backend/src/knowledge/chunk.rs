//! Chunk stage: cuts each section into overlapping chunks for embedding and citation.
//!
//! A chunk contains at most [`ChunkParams::max_chars`] characters (Unicode scalar values, not
//! bytes) and never spans two sections. A cut falls at a sentence start when one lies in the
//! second half of the window, else at a word start, else between two grapheme clusters. So a
//! chunk never splits a UTF-8 character, an emoji sequence or a letter with its accents. The
//! next chunk starts up to [`ChunkParams::overlap_chars`] before the cut, at a sentence or word
//! start when possible. When the rest of a section fits in one chunk it is not cut again, and
//! no cut leaves fewer than [`ChunkParams::min_chars`] new characters for the last chunk, so
//! a small trailing piece stays with the chunk before it.
//!
//! The one exception to grapheme boundaries is a single grapheme cluster longer than half a
//! chunk (hundreds of combining marks): it is cut between characters, because the length
//! limit matters more to the embedding model.

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

/// Chunking parameters, valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    max_chars: usize,
    overlap_chars: usize,
    min_chars: usize,
}

/// Parameters rejected by [`ChunkParams::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkParamsError {
    /// `max_chars` is outside [`ChunkParams::MAX_CHARS_RANGE`].
    #[error("max_chars {0} is out of range; use {min} to {max}", min = ChunkParams::MAX_CHARS_RANGE.start(), max = ChunkParams::MAX_CHARS_RANGE.end())]
    MaxChars(usize),
    /// `overlap_chars` is not below half of `max_chars`.
    #[error(
        "overlap_chars {overlap} must be less than half of max_chars {max}; lower the overlap"
    )]
    Overlap {
        /// The overlap given.
        overlap: usize,
        /// The maximum given.
        max: usize,
    },
    /// `min_chars` is zero or above half of `max_chars`.
    #[error("min_chars {min} must be between 1 and half of max_chars {max}")]
    MinChars {
        /// The minimum given.
        min: usize,
        /// The maximum given.
        max: usize,
    },
}

impl ChunkParams {
    /// Default maximum chunk length in characters.
    pub const DEFAULT_MAX_CHARS: usize = 1000;
    /// Default overlap between consecutive chunks of a section, in characters.
    pub const DEFAULT_OVERLAP_CHARS: usize = 200;
    /// Default smallest amount of new text in a section's last chunk, in characters.
    pub const DEFAULT_MIN_CHARS: usize = 100;
    /// Accepted values of `max_chars`.
    pub const MAX_CHARS_RANGE: std::ops::RangeInclusive<usize> = 20..=100_000;

    /// Validates chunking parameters: `max_chars` in [`Self::MAX_CHARS_RANGE`],
    /// `overlap_chars` below half of it, and `min_chars` from 1 to half of it.
    pub fn new(
        max_chars: usize,
        overlap_chars: usize,
        min_chars: usize,
    ) -> Result<Self, ChunkParamsError> {
        if !Self::MAX_CHARS_RANGE.contains(&max_chars) {
            return Err(ChunkParamsError::MaxChars(max_chars));
        }
        if overlap_chars * 2 >= max_chars {
            return Err(ChunkParamsError::Overlap {
                overlap: overlap_chars,
                max: max_chars,
            });
        }
        if min_chars == 0 || min_chars * 2 > max_chars {
            return Err(ChunkParamsError::MinChars {
                min: min_chars,
                max: max_chars,
            });
        }
        Ok(Self {
            max_chars,
            overlap_chars,
            min_chars,
        })
    }

    /// Returns the maximum chunk length in characters.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Returns the overlap between consecutive chunks in characters.
    pub fn overlap_chars(&self) -> usize {
        self.overlap_chars
    }

    /// Returns the smallest amount of new text in a section's last chunk.
    pub fn min_chars(&self) -> usize {
        self.min_chars
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            max_chars: Self::DEFAULT_MAX_CHARS,
            overlap_chars: Self::DEFAULT_OVERLAP_CHARS,
            min_chars: Self::DEFAULT_MIN_CHARS,
        }
    }
}

/// A chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Position among the document's chunks, from 0.
    pub ordinal: usize,
    /// Index of the section the chunk comes from.
    pub section_index: usize,
    /// Headings above the section, outermost first.
    pub section_path: Vec<String>,
    /// The chunk's text, an exact slice of the section text.
    pub text: String,
    /// Offset of the first character in the section text, in characters.
    pub char_start: usize,
    /// Offset just past the last character in the section text, in characters.
    pub char_end: usize,
}

/// Position of a chunk in its section text, in characters and in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First character, in characters.
    pub char_start: usize,
    /// Just past the last character, in characters.
    pub char_end: usize,
    /// First byte.
    pub byte_start: usize,
    /// Just past the last byte.
    pub byte_end: usize,
}

/// Cuts sections, given as heading path and text, into chunks numbered across the document.
pub fn chunk_sections<'a, I>(sections: I, params: &ChunkParams) -> Vec<Chunk>
where
    I: IntoIterator<Item = (&'a [String], &'a str)>,
{
    let mut chunks = Vec::new();
    for (section_index, (path, text)) in sections.into_iter().enumerate() {
        for span in chunk_text(text, params) {
            chunks.push(Chunk {
                ordinal: chunks.len(),
                section_index,
                section_path: path.to_vec(),
                text: text[span.byte_start..span.byte_end].to_string(),
                char_start: span.char_start,
                char_end: span.char_end,
            });
        }
    }
    chunks
}

/// Cuts one section text into chunk spans. Empty text gives none.
pub fn chunk_text(text: &str, params: &ChunkParams) -> Vec<Span> {
    if text.is_empty() {
        return Vec::new();
    }
    let bounds = Boundaries::new(text);
    let total = bounds.total_chars();
    let max = params.max_chars;
    let mut spans = Vec::new();
    let mut start = 0;

    loop {
        if total - start <= max {
            spans.push(bounds.span(start, total));
            return spans;
        }

        // The rest is longer than one chunk, so `total - min_chars > start + max / 2`.
        let highest = (start + max).min(total - params.min_chars);
        let lowest = start + max / 2;
        let cut = last_in(&bounds.sentences, lowest, highest)
            .or_else(|| last_in(&bounds.words, lowest, highest))
            .or_else(|| last_in(&bounds.graphemes, start + 1, highest))
            .unwrap_or(highest);
        spans.push(bounds.span(start, cut));

        let earliest = cut.saturating_sub(params.overlap_chars).max(start + 1);
        let sentence_latest = cut.saturating_sub(params.overlap_chars / 2);
        start = first_in(&bounds.sentences, earliest, sentence_latest)
            .or_else(|| first_in(&bounds.words, earliest, cut))
            .or_else(|| first_in(&bounds.graphemes, earliest, cut))
            .unwrap_or(cut);
    }
}

/// Candidate cut positions in a text, as sorted character offsets.
struct Boundaries {
    /// Byte offset of every character, plus the text length.
    char_bytes: Vec<usize>,
    /// Grapheme cluster boundaries, 0 and the end included.
    graphemes: Vec<usize>,
    /// Word starts (UAX #29 word boundaries followed by a non-whitespace character) that are
    /// grapheme boundaries.
    words: Vec<usize>,
    /// Sentence starts (UAX #29) that are grapheme boundaries.
    sentences: Vec<usize>,
}

impl Boundaries {
    fn new(text: &str) -> Self {
        let mut char_bytes: Vec<usize> = text.char_indices().map(|(byte, _)| byte).collect();
        char_bytes.push(text.len());
        let to_char = |byte: usize| char_bytes.partition_point(|&start| start < byte);

        let graphemes: Vec<usize> = text
            .grapheme_indices(true)
            .map(|(byte, _)| to_char(byte))
            .chain(std::iter::once(char_bytes.len() - 1))
            .collect();
        let is_grapheme = |offset: &usize| graphemes.binary_search(offset).is_ok();
        let words: Vec<usize> = text
            .split_word_bound_indices()
            .filter(|(_, word)| !word.starts_with(char::is_whitespace))
            .map(|(byte, _)| to_char(byte))
            .filter(is_grapheme)
            .collect();
        let sentences: Vec<usize> = text
            .split_sentence_bound_indices()
            .map(|(byte, _)| to_char(byte))
            .filter(is_grapheme)
            .collect();
        Self {
            char_bytes,
            graphemes,
            words,
            sentences,
        }
    }

    fn total_chars(&self) -> usize {
        self.char_bytes.len() - 1
    }

    fn span(&self, char_start: usize, char_end: usize) -> Span {
        Span {
            char_start,
            char_end,
            byte_start: self.char_bytes[char_start],
            byte_end: self.char_bytes[char_end],
        }
    }
}

/// Returns the largest offset in `sorted` within `lowest..=highest`.
fn last_in(sorted: &[usize], lowest: usize, highest: usize) -> Option<usize> {
    let after = sorted.partition_point(|&offset| offset <= highest);
    after
        .checked_sub(1)
        .map(|index| sorted[index])
        .filter(|&offset| offset >= lowest)
}

/// Returns the smallest offset in `sorted` within `lowest..=highest`.
fn first_in(sorted: &[usize], lowest: usize, highest: usize) -> Option<usize> {
    let index = sorted.partition_point(|&offset| offset < lowest);
    sorted
        .get(index)
        .copied()
        .filter(|&offset| offset <= highest)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn params(max: usize, overlap: usize, min: usize) -> ChunkParams {
        ChunkParams::new(max, overlap, min).unwrap()
    }

    fn texts<'a>(text: &'a str, spans: &[Span]) -> Vec<&'a str> {
        spans
            .iter()
            .map(|span| &text[span.byte_start..span.byte_end])
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let defaults = ChunkParams::default();
        assert_eq!(
            ChunkParams::new(
                ChunkParams::DEFAULT_MAX_CHARS,
                ChunkParams::DEFAULT_OVERLAP_CHARS,
                ChunkParams::DEFAULT_MIN_CHARS
            ),
            Ok(defaults)
        );
        assert_eq!(defaults.max_chars(), 1000);
        assert_eq!(defaults.overlap_chars(), 200);
        assert_eq!(defaults.min_chars(), 100);
    }

    #[test]
    fn invalid_params_rejected() {
        assert_eq!(
            ChunkParams::new(10, 2, 2),
            Err(ChunkParamsError::MaxChars(10))
        );
        let error = ChunkParams::new(1000, 500, 100).unwrap_err();
        assert_eq!(
            error.to_string(),
            "overlap_chars 500 must be less than half of max_chars 1000; lower the overlap"
        );
        assert!(matches!(
            ChunkParams::new(1000, 200, 0),
            Err(ChunkParamsError::MinChars { .. })
        ));
        assert!(matches!(
            ChunkParams::new(1000, 200, 501),
            Err(ChunkParamsError::MinChars { .. })
        ));
        assert!(ChunkParams::new(20, 9, 10).is_ok());
        assert_eq!(
            ChunkParams::new(200_000, 0, 1).unwrap_err().to_string(),
            "max_chars 200000 is out of range; use 20 to 100000"
        );
    }

    #[test]
    fn short_text_is_one_chunk() {
        let spans = chunk_text("Exit signs must be lit.", &ChunkParams::default());
        assert_eq!(spans.len(), 1);
        assert_eq!((spans[0].char_start, spans[0].char_end), (0, 23));
        assert!(chunk_text("", &ChunkParams::default()).is_empty());
    }

    #[test]
    fn cuts_at_sentence_starts() {
        let text = "Alpha beta gamma delta. ".repeat(10);
        let spans = chunk_text(&text, &params(100, 30, 20));
        let pieces = texts(&text, &spans);
        for piece in &pieces {
            assert!(piece.starts_with("Alpha"), "{piece:?}");
            assert!(piece.ends_with("delta. "), "{piece:?}");
        }
        assert!(spans
            .windows(2)
            .all(|pair| pair[1].char_start < pair[0].char_end));
    }

    #[test]
    fn falls_back_to_word_starts() {
        let text = "word ".repeat(100);
        let spans = chunk_text(&text, &params(50, 10, 10));
        for piece in texts(&text, &spans) {
            assert!(piece.starts_with("word"), "{piece:?}");
            assert!(piece.chars().count() <= 50);
        }
    }

    #[test]
    fn long_word_cut_between_graphemes() {
        let text = "e\u{301}".repeat(100);
        let spans = chunk_text(&text, &params(51, 10, 10));
        for span in &spans {
            assert!(span.char_end - span.char_start <= 51);
            assert_eq!(span.char_start % 2, 0, "starts on a letter, not its accent");
            assert_eq!(span.char_end % 2, 0, "ends after an accent");
        }
    }

    #[test]
    fn oversized_grapheme_cut_between_chars() {
        let text = format!("a{}", "\u{301}".repeat(300));
        let spans = chunk_text(&text, &params(100, 20, 10));
        assert!(spans
            .iter()
            .all(|span| span.char_end - span.char_start <= 100));
        assert_eq!(spans.last().map(|span| span.char_end), Some(301));
    }

    #[test]
    fn trailing_piece_stays_with_previous_chunk() {
        let text = format!("{} Tail.", "Sentence number one. ".repeat(4));
        let spans = chunk_text(&text, &params(100, 10, 20));
        assert_eq!(spans.len(), 1, "{:?}", texts(&text, &spans));

        let text = format!("{}{}", "x ".repeat(60), "y".repeat(5));
        let spans = chunk_text(&text, &params(100, 10, 20));
        let last = spans.last().unwrap();
        let previous = spans[spans.len() - 2];
        assert!(last.char_end - previous.char_end >= 20, "{spans:?}");
    }

    #[test]
    fn sections_are_chunked_apart() {
        let chapter = vec!["A".to_string()];
        let subsection = vec!["A".to_string(), "B".to_string()];
        let long = "Lorem ipsum dolor sit amet. ".repeat(60);
        let sections = [
            (chapter.as_slice(), long.as_str()),
            (subsection.as_slice(), "Short."),
            (subsection.as_slice(), ""),
        ];
        let chunks = chunk_sections(sections, &ChunkParams::default());
        assert!(chunks.len() >= 3);
        let last = chunks.last().unwrap();
        assert_eq!(last.text, "Short.");
        assert_eq!(last.section_index, 1);
        assert_eq!(last.section_path, subsection);
        assert_eq!((last.char_start, last.char_end), (0, 6));
        for (ordinal, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.ordinal, ordinal);
        }
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|chunk| chunk.section_path == chapter));
    }

    /// Pieces that stress segmentation: emoji with modifiers and joiners, flags, CJK,
    /// combining marks, Hangul jamo, Devanagari, long words and sentence and line breaks.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,12}".prop_map(|word| format!("{word} ")),
            Just(". ".to_string()),
            Just("? ".to_string()),
            Just("\n".to_string()),
            Just("\n\n".to_string()),
            Just("👍🏽".to_string()),
            Just("👨\u{200D}👩\u{200D}👧\u{200D}👦".to_string()),
            Just("🏳\u{FE0F}\u{200D}🌈".to_string()),
            Just("🇫🇷🇯🇵".to_string()),
            Just("漢字かなカナ。".to_string()),
            Just("e\u{301}a\u{308}\u{323}o\u{302}\u{303}".to_string()),
            Just("\u{1100}\u{1161}\u{11A8}".to_string()),
            Just("नमस्ते ".to_string()),
            Just("\r\n".to_string()),
            (1usize..400).prop_map(|length| "x".repeat(length)),
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..120).prop_map(|pieces| pieces.concat())
    }

    fn valid_params() -> impl Strategy<Value = ChunkParams> {
        (20usize..400)
            .prop_flat_map(|max| (Just(max), 0..max.div_ceil(2), 1..=max / 2))
            .prop_map(|(max, overlap, min)| params(max, overlap, min))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn chunks_are_exact_bounded_and_cover(text in document(), params in valid_params()) {
            let spans = chunk_text(&text, &params);
            let chars: Vec<char> = text.chars().collect();
            let graphemes: Vec<usize> = text
                .grapheme_indices(true)
                .map(|(byte, _)| text[..byte].chars().count())
                .chain(std::iter::once(chars.len()))
                .collect();

            if text.is_empty() {
                prop_assert!(spans.is_empty());
                return Ok(());
            }
            prop_assert_eq!(spans.first().map(|span| span.char_start), Some(0));
            prop_assert_eq!(spans.last().map(|span| span.char_end), Some(chars.len()));
            for span in &spans {
                prop_assert!(span.char_start < span.char_end, "empty chunk {:?}", span);
                prop_assert!(span.char_end - span.char_start <= params.max_chars());
                prop_assert!(graphemes.binary_search(&span.char_start).is_ok(), "start {:?}", span);
                prop_assert!(graphemes.binary_search(&span.char_end).is_ok(), "end {:?}", span);
                let expected: String = chars[span.char_start..span.char_end].iter().collect();
                prop_assert_eq!(&text[span.byte_start..span.byte_end], expected.as_str());
            }
            for pair in spans.windows(2) {
                prop_assert!(pair[1].char_start > pair[0].char_start, "no progress {:?}", pair);
                prop_assert!(pair[1].char_start <= pair[0].char_end, "gap {:?}", pair);
                prop_assert!(pair[0].char_end - pair[1].char_start <= params.overlap_chars());
            }
        }

        #[test]
        fn section_chunks_stay_in_their_section(
            first in document(),
            second in document(),
            params in valid_params(),
        ) {
            let paths = [vec!["One".to_string()], vec!["Two".to_string()]];
            let texts = [first.as_str(), second.as_str()];
            let sections = paths.iter().map(Vec::as_slice).zip(texts);
            for chunk in chunk_sections(sections, &params) {
                let text = texts[chunk.section_index];
                prop_assert_eq!(&chunk.section_path, &paths[chunk.section_index]);
                let expected: String = text
                    .chars()
                    .skip(chunk.char_start)
                    .take(chunk.char_end - chunk.char_start)
                    .collect();
                prop_assert_eq!(chunk.text, expected);
            }
        }
    }
}
