"""The labeler: atproto labels on records and accounts the gate judged, signed with the labeler's key and
served on the public listener (``com.atproto.label.queryLabels`` and ``subscribeLabels``)."""
