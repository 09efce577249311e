"""Files people upload and download: scans of paper forms."""
