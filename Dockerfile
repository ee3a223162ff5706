# A Debian 12 image that builds and tests xvgpu the way CI does (.ci/run installs the same packages).
FROM node:20-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential python3 libxen-dev libdrm-dev linux-image-amd64 linux-headers-amd64 \
      qemu-system-x86 busybox-static cpio kmod librsvg2-bin spin redis-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /xvgpu
COPY . .
# npm ci runs the install script, which builds the native addon with npm's bundled node-gyp.
RUN npm ci && npm run build
CMD ["npm", "test"]
