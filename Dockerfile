# pushgateway-cluster image. No base image is pulled: `make docker` builds a
# static (CGO_ENABLED=0) binary on the host and this file only assembles it.
# Build context: .build/docker (prepared by `make docker`).
FROM scratch
COPY pushgateway-cluster /bin/pushgateway-cluster
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The default --storage.path is "data/", relative to the working directory
# "/": state lives in /data, owned by the unprivileged user.
COPY --chown=65534:65534 data/ /data/
WORKDIR /
USER 65534:65534
EXPOSE 9091 9094 9094/udp 9095
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s CMD ["/bin/pushgateway-cluster", "healthcheck"]
ENTRYPOINT ["/bin/pushgateway-cluster"]
