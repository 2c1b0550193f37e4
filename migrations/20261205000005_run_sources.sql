-- Who answered the maker and checker stages of a run: a model ("gpt-4o-mini through the
-- OpenAI-compatible provider") or the offline rules with the reason ("the offline rules,
-- because the tenant is over its monthly token budget ..."), so the proposal can say so.
ALTER TABLE recommendation_runs
    ADD COLUMN maker_source   text,
    ADD COLUMN checker_source text;
