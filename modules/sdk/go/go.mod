module peon.local/sdk

go 1.24
