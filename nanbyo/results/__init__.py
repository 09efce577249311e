"""認定結果データ一括取込: review results from a municipality's 認定事務システム, onto its own documents."""
