# The kasync binary in a small image. Built by compose.yaml; by hand:
#   docker build -t kasync .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/kasync ./cmd/kasync && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kasync /usr/local/bin/kasync
# Pebble checkpoints, owned by the image's nonroot user so that a named volume mounted
# here is too; kasync keeps its own directories in it at 0700.
COPY --from=build --chown=65532:65532 /out/data /var/lib/kasync
VOLUME /var/lib/kasync
EXPOSE 7070 8080
ENTRYPOINT ["/usr/local/bin/kasync"]
