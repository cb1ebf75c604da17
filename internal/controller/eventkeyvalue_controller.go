package controller

// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues/finalizers,verbs=update
