module sidecar-injector/bench/go

go 1.22
