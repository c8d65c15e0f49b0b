"""Generated protobuf and gRPC stubs of `proto/switchboard/v1` (made by `make proto`; never edited)."""
