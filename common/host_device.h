// PS_HOST_DEVICE marks a function that compiles for both the host and a CUDA
// device (__host__ __device__ under nvcc, nothing under a host compiler), so
// the CPU and CUDA backends run the same arithmetic from one source.
#ifndef PS_COMMON_HOST_DEVICE_H_
#define PS_COMMON_HOST_DEVICE_H_

#ifdef __CUDACC__
#define PS_HOST_DEVICE __host__ __device__
#else
#define PS_HOST_DEVICE
#endif

#endif  // PS_COMMON_HOST_DEVICE_H_
