# Optional: the `imagintalk` bucket on AWS S3 instead of the in-cluster MinIO (storage/minio.yaml).
# With S3, delete AWS_ENDPOINT_URL from k8s/env.yaml (botocore then uses AWS's own endpoint) and
# put an IAM user's (or IRSA role's) keys with access to this bucket in the imagintalk-s3 Secret.
#   terraform init && terraform apply -var region=eu-west-1
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

# Must stay the bucket of IMAGINTALK_STORAGE_ROOT in k8s/env.yaml (a test checks the default).
variable "bucket" {
  type    = string
  default = "imagintalk"
}

provider "aws" {
  region = var.region
}

resource "aws_s3_bucket" "imagintalk" {
  bucket = var.bucket
}

# Checkpoints and registered models are overwritten in place by resumed runs: keep old versions.
resource "aws_s3_bucket_versioning" "imagintalk" {
  bucket = aws_s3_bucket.imagintalk.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "imagintalk" {
  bucket = aws_s3_bucket.imagintalk.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "imagintalk" {
  bucket                  = aws_s3_bucket.imagintalk.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

output "storage_root" {
  value = "s3://${aws_s3_bucket.imagintalk.bucket}/artifacts"
}
