module github.com/signstar/signstar

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/ProtonMail/go-crypto v1.5.2
	github.com/cloudflare/circl v1.6.3
	github.com/go-piv/piv-go/v2 v2.6.0
	github.com/google/go-tpm v0.9.8
	github.com/klauspost/compress v1.20.3
	github.com/landlock-lsm/go-landlock v0.11.0
	github.com/rogpeppe/go-internal v1.16.0
	github.com/seccomp/libseccomp-golang v0.11.1
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/crypto v0.50.0
	golang.org/x/sys v0.49.0
	kernel.org/pub/linux/libs/security/libcap/psx v1.2.77
)

require (
	golang.org/x/mod v0.41.0 // indirect
	golang.org/x/tools v0.49.0 // indirect
)

replace github.com/go-piv/piv-go/v2 => ./third_party/piv-go
