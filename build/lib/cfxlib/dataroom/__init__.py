"""The Series A data room: a bundle built from the latest publication (``dataroom/manifest.yml``),
signed (minisign), encrypted per file for the investors (age), versioned per commit and data,
synced to Google Cloud Storage or a local folder, verifiable without cfx."""
