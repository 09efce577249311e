"""XML in and out (issue 12): files from hospital systems read safely (reader), checked, imported and exported."""
