module github.com/libsdxlvae/libsdxlvae/examples/go

go 1.19
