"""Every sentence-transformers training loss: a pure function of embeddings, and a class that binds it.

The functions (snake_case names) take [B, D] embeddings (and labels), compute in float32 and return a
scalar; hyperparameters are keyword-only with sentence-transformers' defaults. The classes carry
sentence-transformers' names and constructor signatures (the same parameters in the same order, positional
where theirs are) and bind a model and the hyperparameters, for `fit`:
`losses.MultipleNegativesRankingLoss(model, scale=20.0)`, `losses.MatryoshkaLoss(model, loss, [768, 512])`.
jaxst-only options (`axis_name`) are keyword-only, after sentence-transformers' parameters.
"""

from jaxst.losses.adaptive_layer import AdaptiveLayerLoss, adaptive_layer_loss
from jaxst.losses.base import Loss
from jaxst.losses.batch_triplet import (
    BatchAllTripletLoss,
    BatchHardSoftMarginTripletLoss,
    BatchHardTripletLoss,
    BatchHardTripletLossDistanceFunction,
    BatchSemiHardTripletLoss,
    batch_all_triplet_loss,
    batch_hard_soft_margin_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
)
from jaxst.losses.cached import (
    CachedGISTEmbedLoss,
    CachedMultipleNegativesRankingLoss,
    CachedMultipleNegativesSymmetricRankingLoss,
)
from jaxst.losses.classification import SoftmaxLoss, softmax_loss
from jaxst.losses.contrastive import (
    ContrastiveLoss,
    OnlineContrastiveLoss,
    SiameseDistanceMetric,
    contrastive_loss,
    online_contrastive_loss,
)
from jaxst.losses.contrastive_tension import (
    ContrastiveTensionLoss,
    ContrastiveTensionLossInBatchNegatives,
    contrastive_tension_loss,
    contrastive_tension_loss_in_batch_negatives,
)
from jaxst.losses.contrastive_tension_data import ContrastiveTensionDataLoader, contrastive_tension_examples
from jaxst.losses.cosine import (
    AnglELoss,
    CoSENTLoss,
    CosineSimilarityLoss,
    angle_loss,
    cosent_loss,
    cosine_similarity_loss,
)
from jaxst.losses.distillation import (
    DistillKLDivLoss,
    MarginMSELoss,
    MSELoss,
    distill_kl_div_loss,
    margin_mse_loss,
    mse_loss,
)
from jaxst.losses.gist import GISTEmbedLoss, gist_embed_loss
from jaxst.losses.matryoshka import MatryoshkaLoss, matryoshka_loss
from jaxst.losses.matryoshka_2d import Matryoshka2dLoss
from jaxst.losses.mega_batch import MegaBatchMarginLoss, mega_batch_margin_loss
from jaxst.losses.orthogonal import GlobalOrthogonalRegularizationLoss, global_orthogonal_regularization_loss
from jaxst.losses.ranking import (
    MultipleNegativesRankingLoss,
    MultipleNegativesSymmetricRankingLoss,
    multiple_negatives_ranking_loss,
    multiple_negatives_symmetric_ranking_loss,
)
from jaxst.losses.triplet import TripletDistanceMetric, TripletLoss, triplet_loss

__all__ = [
    "AdaptiveLayerLoss",
    "AnglELoss",
    "BatchAllTripletLoss",
    "BatchHardSoftMarginTripletLoss",
    "BatchHardTripletLoss",
    "BatchHardTripletLossDistanceFunction",
    "BatchSemiHardTripletLoss",
    "CachedGISTEmbedLoss",
    "CachedMultipleNegativesRankingLoss",
    "CachedMultipleNegativesSymmetricRankingLoss",
    "CoSENTLoss",
    "ContrastiveLoss",
    "ContrastiveTensionDataLoader",
    "ContrastiveTensionLoss",
    "ContrastiveTensionLossInBatchNegatives",
    "CosineSimilarityLoss",
    "DistillKLDivLoss",
    "GISTEmbedLoss",
    "GlobalOrthogonalRegularizationLoss",
    "Loss",
    "MSELoss",
    "MarginMSELoss",
    "Matryoshka2dLoss",
    "MatryoshkaLoss",
    "MegaBatchMarginLoss",
    "MultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "OnlineContrastiveLoss",
    "SiameseDistanceMetric",
    "SoftmaxLoss",
    "TripletDistanceMetric",
    "TripletLoss",
    "adaptive_layer_loss",
    "angle_loss",
    "batch_all_triplet_loss",
    "batch_hard_soft_margin_triplet_loss",
    "batch_hard_triplet_loss",
    "batch_semi_hard_triplet_loss",
    "contrastive_loss",
    "contrastive_tension_examples",
    "contrastive_tension_loss",
    "contrastive_tension_loss_in_batch_negatives",
    "cosent_loss",
    "cosine_similarity_loss",
    "distill_kl_div_loss",
    "gist_embed_loss",
    "global_orthogonal_regularization_loss",
    "margin_mse_loss",
    "matryoshka_loss",
    "mega_batch_margin_loss",
    "mse_loss",
    "multiple_negatives_ranking_loss",
    "multiple_negatives_symmetric_ranking_loss",
    "online_contrastive_loss",
    "softmax_loss",
    "triplet_loss",
]
