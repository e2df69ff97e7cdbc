"""Event stage: the Event record, its log-line format, the event pipeline and its sinks."""
