# A Debian 12 image that builds and tests xvgpu the way CI does.
FROM node:20-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends build-essential python3 libxen-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /xvgpu
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build
CMD ["npm", "test"]
