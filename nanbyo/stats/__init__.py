"""統計情報出力 (issue 14): counts of documents and of distinct patients, by the dimensions people ask for, within
the user's scope (nanbyo.stats.counts); the plain columns they count by kept current (nanbyo.stats.refresh)."""
