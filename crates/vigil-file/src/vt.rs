//! VirusTotal v3 client (being written).
