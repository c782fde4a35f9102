// Trilinear warp of a feature volume by a dense sampling grid (CUDA, compiled by CuPy at run time).
//
// Same convention as torch.nn.functional.grid_sample(mode="bilinear", padding_mode="zeros",
// align_corners=False) on 5D inputs:
//   volume (B, C, D, H, W), grid (B, Do, Ho, Wo, 3) holding (x, y, z) in [-1, 1],
//   out (B, C, Do, Ho, Wo); x indexes W, y indexes H, z indexes D; a corner outside the volume
//   contributes 0.
//
// `sample_voxel` is the per-voxel arithmetic.  It is plain C++ when WARP_HOST is defined, so the
// same function is compiled for the host in the tests and checked against torch.

#ifdef WARP_HOST
#define WARP_FN inline
#else
#define WARP_FN __device__ __forceinline__
#endif

// Unnormalize a coordinate in [-1, 1] to pixel space (align_corners=False).
WARP_FN float warp_unnormalize(float coord, int size) {
    return ((coord + 1.0f) * size - 1.0f) * 0.5f;
}

// Trilinear sample of channel plane `plane` (D*H*W floats, any element type T) at grid point (gx, gy, gz).
template <typename T>
WARP_FN float sample_voxel(const T* plane, int D, int H, int W, float gx, float gy, float gz) {
    float x = warp_unnormalize(gx, W);
    float y = warp_unnormalize(gy, H);
    float z = warp_unnormalize(gz, D);
    // floorf keeps negative coordinates right (a cast would round towards zero)
    float fx = floorf(x), fy = floorf(y), fz = floorf(z);
    int x0 = (int)fx, y0 = (int)fy, z0 = (int)fz;
    float tx = x - fx, ty = y - fy, tz = z - fz;
    float result = 0.0f;
    for (int dz = 0; dz < 2; ++dz) {
        int zi = z0 + dz;
        if (zi < 0 || zi >= D) continue;
        float wz = dz ? tz : 1.0f - tz;
        for (int dy = 0; dy < 2; ++dy) {
            int yi = y0 + dy;
            if (yi < 0 || yi >= H) continue;
            float wy = dy ? ty : 1.0f - ty;
            for (int dx = 0; dx < 2; ++dx) {
                int xi = x0 + dx;
                if (xi < 0 || xi >= W) continue;
                float wx = dx ? tx : 1.0f - tx;
                result += wz * wy * wx * (float)plane[((long)zi * H + yi) * W + xi];
            }
        }
    }
    return result;
}

#ifndef WARP_HOST
#include <cuda_fp16.h>

// One thread per output voxel; it loops over the channels (the grid point is read once).
template <typename T>
__device__ void warp_volume(const T* volume, const float* grid, T* out,
                            int B, int C, int D, int H, int W, int Do, int Ho, int Wo) {
    long index = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long voxels = (long)Do * Ho * Wo;
    if (index >= (long)B * voxels) return;
    int b = (int)(index / voxels);
    long v = index % voxels;
    const float* g = grid + index * 3;
    float gx = g[0], gy = g[1], gz = g[2];
    long plane = (long)D * H * W;
    for (int c = 0; c < C; ++c) {
        const T* source = volume + ((long)b * C + c) * plane;
        out[((long)b * C + c) * voxels + v] = (T)sample_voxel<T>(source, D, H, W, gx, gy, gz);
    }
}

extern "C" __global__ void warp_volume_f32(const float* volume, const float* grid, float* out,
                                           int B, int C, int D, int H, int W, int Do, int Ho, int Wo) {
    warp_volume<float>(volume, grid, out, B, C, D, H, W, Do, Ho, Wo);
}

extern "C" __global__ void warp_volume_f16(const __half* volume, const float* grid, __half* out,
                                           int B, int C, int D, int H, int W, int Do, int Ho, int Wo) {
    warp_volume<__half>(volume, grid, out, B, C, D, H, W, Do, Ho, Wo);
}
#endif
