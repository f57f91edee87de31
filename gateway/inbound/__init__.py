"""HTTP inbound: partners (and web shops) post X12, canonical JSON, their own JSON or cXML."""
