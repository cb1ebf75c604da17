package controller

// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores/finalizers,verbs=update
