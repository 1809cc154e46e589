"""Pure helpers of the Verustoolkit pipeline, grouped by topic."""
