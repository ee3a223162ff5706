# xvgpu for the simulated platform, the benchmark and fleet workers (no Xen, no kernel helper: the
# helper is a kernel module, built and loaded on the host; see docs/kernel-helper.md).
#   docker build -t xvgpu .
#   docker run --rm xvgpu                                   # npm start: a 5 s simulated run
#   docker run --rm xvgpu node dist/cli/main.js bench --quick
#   docker run --rm xvgpu node dist/cli/main.js fleet worker --redis redis://HOST:6379
# No container engine runs where this is developed: contrib/docker/check-in-chroot.sh runs these
# stages' commands in an equivalent Debian 12 environment in CI (docs/operations.md).

# build: the native addon (node-gyp) and the TypeScript, then production dependencies only.
FROM node:20-bookworm AS build
WORKDIR /xvgpu
COPY package.json package-lock.json binding.gyp tsconfig.json tsconfig.build.json ./
COPY native native
COPY src src
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund

# runtime: node, the built project and its production node_modules, nothing else.
FROM node:20-bookworm-slim AS runtime
WORKDIR /xvgpu
COPY --from=build /xvgpu/package.json package.json
COPY --from=build /xvgpu/dist dist
COPY --from=build /xvgpu/build/Release/xvgpu_native.node build/Release/xvgpu_native.node
COPY --from=build /xvgpu/node_modules node_modules
USER node
# --ignore-scripts: the project is already built (prestart would rebuild it with dev tools).
CMD ["npm", "start", "--ignore-scripts"]
