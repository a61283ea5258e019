module example.com/cclaunch/shimcc

go 1.19

// Vendored from Debian bookworm's Go packages by vendor.sh (no module proxy
// is needed): the versions are those packages' upstream versions.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)

require (
	github.com/golang/protobuf v1.3.5 // indirect
	golang.org/x/net v0.7.0 // indirect
	golang.org/x/sys v0.3.0 // indirect
	golang.org/x/text v0.7.0 // indirect
	google.golang.org/genproto v0.0.0-20200413115906-b5235f65be36 // indirect
)
