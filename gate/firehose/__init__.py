"""The firehose watcher: ``upload-gate watch`` judges every blob that new records on a PDS's or relay's
``com.atproto.sync.subscribeRepos`` reference, with the same judge as uploads."""
