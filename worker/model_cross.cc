#include "worker/model_cross.h"

#include <utility>

#include "glog/logging.h"

namespace ps {

CrossNet::CrossNet(std::vector<CrossLayerSpec> layers, Backend* backend)
    : layers_(std::move(layers)),
      width_(layers_.empty() ? 0 : layers_[0].width),
      backend_(backend),
      xs_(layers_.size()),
      xw_(layers_.size()) {
  for (const CrossLayerSpec& layer : layers_) CHECK_EQ(layer.width, width_);
}

const float* CrossNet::Forward(int batch, const float* x0,
                               const float* params) {
  const float* x = x0;
  for (int l = 0; l < num_layers(); ++l) {
    const CrossLayerSpec& layer = layers_[l];
    xs_[l].resize(static_cast<size_t>(batch) * width_);
    xw_[l].resize(batch);
    backend_->CrossForward(batch, width_, x0, x, params + layer.weight_offset,
                           params + layer.bias_offset, xw_[l].data(),
                           xs_[l].data());
    x = xs_[l].data();
  }
  return x;
}

void CrossNet::Backward(int batch, const float* x0, const float* params,
                        const float* d_out, float* d_x0, float* dense_grad) {
  const size_t size = static_cast<size_t>(batch) * width_;
  d_a_.resize(size);
  d_b_.resize(size);
  const float* d_next = d_out;  // the gradient by x_{l+1}
  for (int l = num_layers() - 1; l >= 0; --l) {
    const CrossLayerSpec& layer = layers_[l];
    float* d_x = d_next == d_a_.data() ? d_b_.data() : d_a_.data();
    const float* x = l == 0 ? x0 : xs_[l - 1].data();
    backend_->CrossBackward(batch, width_, x0, x, params + layer.weight_offset,
                            xw_[l].data(), d_next, d_x0, d_x,
                            dense_grad + layer.weight_offset,
                            dense_grad + layer.bias_offset);
    d_next = d_x;
  }
  // x_0 is x0: the gradient that reached it joins d_x0.
  const BlockLayout packed{width_, 0};
  backend_->CopyBlocks(batch, 1, width_, d_next, packed, d_x0, packed, true);
}

}  // namespace ps
