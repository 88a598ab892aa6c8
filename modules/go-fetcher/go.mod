module peon.local/fetcher

go 1.24

require peon.local/sdk v0.0.0

replace peon.local/sdk => ../sdk/go
